"""Test party with its own front end (`ui`): a button that pings, a line showing replies."""

from jupyter_party import Server

UI = """
export default {
  render({ el, room }) {
    const button = document.createElement("button");
    button.id = "ping";
    button.textContent = "ping";
    button.onclick = () => room.send("ping");
    const reply = document.createElement("div");
    reply.id = "reply";
    room.on("message", (data) => { reply.textContent = data; });
    el.append(button, reply);
  },
};
"""


class UIParty(Server):
    ui = UI

    def on_message(self, message, sender):
        sender.send(f"pong:{message}")
