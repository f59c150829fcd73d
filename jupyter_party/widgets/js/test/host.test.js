import { afterEach, beforeEach, expect, it } from "vitest";
import host, { eventLine } from "../src/host.js";
import { fakeModel } from "./fakes.js";

let el;
beforeEach(() => {
  el = document.createElement("div");
  document.body.append(el);
});
afterEach(() => el.remove());

function hostModel(state = {}) {
  return fakeModel({
    name: "quiz",
    url: "http://h/jp/parties/quiz/",
    status: "live",
    rooms: [],
    events: [],
    share: {},
    ...state,
  });
}

it("shows the party's rooms and events as the kernel pushes them", () => {
  const model = hostModel();
  host.render({ model, el });
  expect(el.querySelector("h1").textContent).toBe("party quiz");
  expect(el.querySelector(".status").className).toBe("status live");
  expect(el.querySelector("tbody").textContent).toBe("no live room yet");
  model.set("rooms", [{ room: "class", connections: 2 }]);
  expect(el.querySelector("tbody").textContent).toContain("class2 connections");
  model.set("events", [{ time: 0, kind: "message", room: "class", connection: "ann", text: "42" }]);
  expect(el.querySelector(".events .message").textContent).toMatch(/class ann message: 42$/);
});

it("asks the kernel for share links and to stop", () => {
  const model = hostModel({ rooms: [{ room: "class", connections: 1 }] });
  host.render({ model, el });
  el.querySelector("tbody button").click();
  el.querySelector("form input").value = "other";
  el.querySelector("form").dispatchEvent(new Event("submit", { cancelable: true }));
  el.querySelector("button.stop").click();
  expect(model.sent.map((m) => m.content)).toEqual([
    { type: "share", room: "class" },
    { type: "share", room: "other" },
    { type: "stop" },
  ]);
  model.set("share", { room: "class", url: "http://h/jp/party-share/quiz/class?share_token=x" });
  const link = el.querySelector(".share a");
  expect(link.href).toBe("http://h/jp/party-share/quiz/class?share_token=x");
  model.set("share", { room: "bad/", error: "invalid room id" });
  expect(el.querySelector(".share .error").textContent).toBe("invalid room id");
  model.set("status", "stopped: by stop()");
  expect(el.querySelector("button.stop").disabled).toBe(true);
});

it("writes one line per event", () => {
  const line = eventLine({ time: 0, kind: "join", room: "r", connection: "c", text: "" });
  expect(line).toMatch(/ r c join$/);
});
