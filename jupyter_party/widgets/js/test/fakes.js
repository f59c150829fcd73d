// Test doubles: an anywidget model and a WebSocket the tests drive by hand.

export function fakeModel(initial = {}) {
  const state = { party: "chat", room: "lobby", mode: "auto", status: "", connection_id: "", ...initial };
  const listeners = {};
  const model = {
    state,
    sent: [], // [{content, buffers}] custom messages to the kernel
    saves: 0,
    get: (key) => state[key],
    set(key, value) {
      state[key] = value;
      model.emit(`change:${key}`);
    },
    on(event, callback) {
      (listeners[event] ||= []).push(callback);
    },
    off(event, callback) {
      const list = listeners[event] || [];
      if (list.includes(callback)) list.splice(list.indexOf(callback), 1);
    },
    send(content, _callbacks, buffers) {
      model.sent.push({ content, buffers });
    },
    save_changes() {
      model.saves += 1;
    },
    emit(event, ...args) {
      for (const callback of [...(listeners[event] || [])]) callback(...args);
    },
    listenerCount: (event) => (listeners[event] || []).length,
  };
  return model;
}

export class FakeWebSocket {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closed = null;
    FakeWebSocket.instances.push(this);
  }
  static last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }
  // driven by the test
  open() {
    this.readyState = 1;
    this.onopen && this.onopen({});
  }
  receive(data) {
    this.onmessage && this.onmessage({ data: data instanceof Uint8Array ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data });
  }
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
  // called by the code under test
  send(data) {
    this.sent.push(data);
  }
  close(code = 1000, reason = "") {
    this.closed = { code, reason };
    this.serverClose(code, reason);
  }
}

/** A page with (or without) JupyterLab's jupyter-config-data. */
export function setPageConfig(config) {
  document.getElementById("jupyter-config-data")?.remove();
  if (!config) return;
  const script = document.createElement("script");
  script.id = "jupyter-config-data";
  script.type = "application/json";
  script.textContent = JSON.stringify(config);
  document.body.append(script);
}

export const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** `requestAnimationFrame` for tests: the frames asked for run when the test calls `run()`. */
export function fakeFrames() {
  const queue = [];
  return {
    requestAnimationFrame: (callback) => queue.push(callback),
    run() {
      for (const callback of queue.splice(0)) callback();
    },
    get pending() {
      return queue.length;
    },
  };
}
