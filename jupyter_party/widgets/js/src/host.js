// Hosted party widget (anywidget module): what a party served by this kernel is doing.
//
// The kernel owns the state and pushes it: status, rooms [{room, connections}], events
// [{time, kind, room, connection, text}], share {room, url | error}. The view only renders
// it and sends two requests: {type: "share", room} and {type: "stop"}.

export const CSS = `
.jp-party-host { font: 13px/1.4 system-ui, sans-serif; border: 1px solid #d0d7de; border-radius: 6px; overflow: hidden; max-width: 900px; }
.jp-party-host header { padding: .4em .8em; background: #24292f; color: #fff; display: flex; gap: 1em; align-items: baseline; flex-wrap: wrap; }
.jp-party-host header h1 { font-size: 1em; margin: 0; color: #fff; }
.jp-party-host header a { color: #9ecbff; font-size: .9em; }
.jp-party-host .status { margin-left: auto; font-size: .9em; }
.jp-party-host .status.live { color: #7ee787; } .jp-party-host .status.stopped { color: #ff7b72; }
.jp-party-host section { padding: .4em .8em; border-bottom: 1px solid #d0d7de; }
.jp-party-host table { border-collapse: collapse; } .jp-party-host td { padding: 0 .8em .1em 0; }
.jp-party-host form { display: flex; gap: .5em; margin: .3em 0 0; }
.jp-party-host .share { margin-top: .3em; word-break: break-all; } .jp-party-host .error { color: #cf222e; }
.jp-party-host .events { height: 10em; overflow: auto; margin: 0; padding: .4em .8em; font: 12px/1.4 ui-monospace, monospace; white-space: pre-wrap; }
.jp-party-host .events .error { color: #cf222e; } .jp-party-host .events .join { color: #116329; } .jp-party-host .events .leave { color: #6e7781; }
`;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

/** One line of the event log. */
export function eventLine(event) {
  const time = new Date(event.time * 1000).toLocaleTimeString();
  const who = event.connection ? ` ${event.connection}` : "";
  const text = event.text ? `: ${event.text}` : "";
  return `${time} ${event.room}${who} ${event.kind}${text}`;
}

function render({ model, el }) {
  const style = element("style");
  style.textContent = CSS;
  const title = element("h1");
  const link = element("a", { target: "_blank", rel: "noopener" });
  const status = element("span", { class: "status" });
  const rooms = element("tbody");
  const roomInput = element("input", { placeholder: "room", "aria-label": "room to share" });
  const shareForm = element("form", {}, roomInput, element("button", { type: "submit" }, "Share link"));
  const shared = element("div", { class: "share" });
  const stop = element("button", { type: "button", class: "stop" }, "Stop");
  const events = element("pre", { class: "events" });
  el.append(
    style,
    element(
      "div",
      { class: "jp-party-host" },
      element("header", {}, title, link, status),
      element("section", {}, element("table", {}, rooms), shareForm, shared),
      events,
      element("section", {}, stop),
    ),
  );

  const share = (room) => model.send({ type: "share", room });
  shareForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (roomInput.value.trim()) share(roomInput.value.trim());
  });
  stop.addEventListener("click", () => model.send({ type: "stop" }));

  const update = () => {
    title.textContent = `party ${model.get("name")}`;
    link.href = link.textContent = `${model.get("url")}ROOM`;
    const state = model.get("status") || "";
    status.textContent = state;
    status.className = `status ${state.split(":")[0]}`;
    stop.disabled = state.startsWith("stopped");
    const live = model.get("rooms") || [];
    rooms.replaceChildren(
      ...(live.length ? live : [null]).map((room) => {
        if (room === null) return element("tr", {}, element("td", {}, "no live room yet"));
        const button = element("button", { type: "button" }, "Share link");
        button.addEventListener("click", () => share(room.room));
        const guests = `${room.connections} connection${room.connections === 1 ? "" : "s"}`;
        return element("tr", {}, element("td", {}, room.room), element("td", {}, guests), element("td", {}, button));
      }),
    );
    const last = model.get("share") || {};
    if (last.url) {
      const anchor = element("a", { href: last.url, target: "_blank", rel: "noopener" }, last.url);
      const copy = element("button", { type: "button" }, "Copy");
      copy.addEventListener("click", () => navigator.clipboard?.writeText(last.url));
      shared.replaceChildren(`Room ${last.room}: `, anchor, " ", copy);
    } else if (last.error) {
      shared.replaceChildren(element("span", { class: "error" }, last.error));
    } else {
      shared.replaceChildren();
    }
    events.replaceChildren(
      ...(model.get("events") || []).map((event) =>
        element("div", { class: event.kind }, eventLine(event)),
      ),
    );
    events.scrollTop = events.scrollHeight;
  };
  for (const name of ["name", "url", "status", "rooms", "events", "share"]) {
    model.on(`change:${name}`, update);
  }
  update();
}

export default { render };
