/**
 * The "Parties" side panel: deployed parties (with their last load error) and live rooms,
 * refreshed every 2 s while visible, each with sparklines of its traffic. Per room: copy a
 * read or write share link, open the room console in a new tab, follow the party's log,
 * inspect it (storage, editable; alarm; connections; a Y room's document), evict it.
 *
 * All requests go through ServerConnection.makeRequest, so the page's base URL, token and
 * XSRF cookie are used (this is what makes it work under a base_url and on JupyterHub).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Clipboard, ICommandPalette } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const REFRESH_MS = 2000;
const MAX_LOG_LINES = 200;
const SPARK_POINTS = 30; // one per refresh: the last minute

interface IParty {
  name: string;
  source: string | null;
  error: string | null;
  kind?: string;
}
interface IRoom {
  party: string;
  room: string;
  connections: number;
  node?: string; // in a party cluster: the node owning the room
  last_activity: number; // epoch seconds of the room's last event
  messages_in: number; // since the instance started
  messages_out: number;
  bytes_in: number;
  bytes_out: number;
}
interface ISample {
  time: number;
  room: IRoom;
}
interface IStored {
  key: string;
  size: number;
  json?: string; // JSON values, pretty-printed
  bytes?: string; // binary values: a hex preview
}
interface IInspected {
  live: boolean;
  storage: IStored[];
  truncated: boolean;
  alarm: number | null;
  connections: {
    id: string;
    user: string | null;
    guest: boolean;
    access: string;
    tags: string[];
    since: number;
    messages_in: number;
    messages_out: number;
  }[];
  document: { types: Record<string, string | null>; bytes: number } | null;
}
interface IWorker {
  worker: number;
  pid: number | null; // null: rooms run in the server process (workers = 0)
  restarts: number;
  last_exit: string | null; // why the last process of this worker ended
}
interface ILive {
  rooms: IRoom[];
  workers: IWorker[];
}
interface ILogRecord {
  seq: number;
  time: number;
  room: string | null;
  kind: string;
  text: string;
}

const partiesIcon = new LabIcon({
  name: 'jupyter-party:parties',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<circle cx="7" cy="8" r="3"/><circle cx="17" cy="8" r="3"/><circle cx="12" cy="15" r="3"/>' +
    '<path d="M2 21c0-3 2.5-4 5-4s5 1 5 4zm10 0c0-3 2.5-4 5-4s5 1 5 4z" opacity=".6"/></g></svg>'
});

/** The admin REST API (`{base}party-api/...`), authenticated like any Jupyter request. */
class PartyApi {
  private settings = ServerConnection.makeSettings();

  async call<T>(path: string, init: RequestInit = {}): Promise<T | null> {
    const url = URLExt.join(this.settings.baseUrl, 'party-api', path);
    const response = await ServerConnection.makeRequest(url, init, this.settings);
    if (!response.ok) {
      throw new ServerConnection.ResponseError(response);
    }
    return response.status === 204 ? null : ((await response.json()) as T);
  }

  async parties(): Promise<IParty[]> {
    return (await this.call<{ parties: IParty[] }>('parties'))!.parties;
  }

  async live(): Promise<ILive> {
    return (await this.call<ILive>('rooms'))!;
  }

  async share(room: IRoom, access: 'read' | 'write'): Promise<string> {
    const body = JSON.stringify({ party: room.party, room: room.room, access, expires_in: 86400 });
    return (await this.call<{ url: string }>('share', { method: 'POST', body }))!.url;
  }

  async logs(party: string, after: number): Promise<{ records: ILogRecord[]; next: number }> {
    const path = `parties/${encodeURIComponent(party)}/logs?after=${after}&wait=0`;
    return (await this.call<{ records: ILogRecord[]; next: number }>(path))!;
  }

  /** `room.room` is the raw URL segment, as the server reported it. */
  async evict(room: IRoom): Promise<void> {
    await this.call(`rooms/${room.party}/${room.room}`, { method: 'DELETE' });
  }

  async inspect(room: IRoom): Promise<IInspected> {
    return (await this.call<IInspected>(`rooms/${room.party}/${room.room}`))!;
  }

  async store(room: IRoom, key: string, value: unknown): Promise<void> {
    const body = JSON.stringify({ value });
    await this.call(`rooms/${room.party}/${room.room}/storage/${encodeURIComponent(key)}`, {
      method: 'PUT',
      body
    });
  }

  async unstore(room: IRoom, key: string): Promise<void> {
    const path = `rooms/${room.party}/${room.room}/storage/${encodeURIComponent(key)}`;
    await this.call(path, { method: 'DELETE' });
  }
}

/** An inline SVG line chart of `values` (scaled to their maximum), 60 × 14 px. */
function sparkSvg(values: number[]): string {
  const width = 60;
  const height = 14;
  const max = Math.max(...values, 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
    .join(' ');
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><polyline fill="none" stroke="currentColor" stroke-width="1" points="${points}"/></svg>`;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export class PartiesPanel extends Widget {
  private api = new PartyApi();
  private timer = 0;
  private shown = ''; // the JSON last rendered, so unchanged lists keep their DOM
  private partiesNode = el('ul', { className: 'jp-party-list' });
  private roomsNode = el('ul', { className: 'jp-party-list' });
  private workersNode = el('ul', { className: 'jp-party-list jp-party-workers' });
  private statusNode = el('div', { className: 'jp-party-status' });
  private linkNode = el('input', { className: 'jp-party-link', readOnly: true, placeholder: 'share link' });
  private logTitle = el('div', { className: 'jp-party-subtitle' }, 'Log: pick a room');
  private logNode = el('pre', { className: 'jp-party-log' });
  private logParty: string | null = null;
  private logNext = 0;
  private history = new Map<string, ISample[]>(); // per room: the last SPARK_POINTS samples
  private inspectTitle = el('div', { className: 'jp-party-subtitle' }, 'Inspector: pick a room');
  private inspectNode = el('div', { className: 'jp-party-inspector' });
  private inspected: IRoom | null = null;

  constructor() {
    super();
    this.id = 'jupyter-party-panel';
    this.addClass('jp-party-panel');
    this.title.icon = partiesIcon;
    this.title.caption = 'Parties';
    const refresh = el('button', { className: 'jp-party-button', textContent: 'Refresh' });
    refresh.onclick = () => void this.refresh();
    this.node.append(
      el('div', { className: 'jp-party-header' }, el('h2', {}, 'Parties'), refresh),
      this.statusNode,
      el('h3', {}, 'Live rooms'),
      this.roomsNode,
      el('h3', {}, 'Workers'),
      this.workersNode,
      this.linkNode,
      this.logTitle,
      this.logNode,
      this.inspectTitle,
      this.inspectNode,
      el('h3', {}, 'Deployed parties'),
      this.partiesNode
    );
  }

  protected onAfterShow(): void {
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
  }

  protected onBeforeHide(): void {
    window.clearInterval(this.timer);
  }

  protected onAfterAttach(): void {
    if (this.isVisible) {
      this.onAfterShow();
    }
  }

  protected onBeforeDetach(): void {
    this.onBeforeHide();
  }

  async refresh(): Promise<void> {
    try {
      const [parties, live] = await Promise.all([this.api.parties(), this.api.live()]);
      if (this.statusNode.classList.contains('jp-party-status-error')) {
        this.say(''); // the API answers again
      }
      this.sample(live.rooms);
      const json = JSON.stringify([parties, live]);
      if (json !== this.shown) {
        this.shown = json;
        this.renderParties(parties);
        this.renderRooms(live.rooms);
        this.renderWorkers(live.workers);
      }
      await this.pollLog();
    } catch (error) {
      this.say(`Cannot reach the party API: ${error}`, true);
    }
  }

  private say(text: string, error = false): void {
    this.statusNode.textContent = text;
    this.statusNode.classList.toggle('jp-party-status-error', error);
  }

  private renderParties(parties: IParty[]): void {
    this.partiesNode.replaceChildren(
      ...parties.map(p => {
        const item = el('li', { className: 'jp-party-item', title: p.source ?? '' });
        item.dataset.party = p.name;
        item.append(el('span', { className: 'jp-party-name' }, p.name));
        if (p.kind) {
          item.append(el('span', { className: 'jp-party-kind' }, ` ${p.kind}`));
        }
        if (p.error) {
          item.classList.add('jp-party-failed');
          item.append(el('pre', { className: 'jp-party-error' }, p.error));
        }
        return item;
      })
    );
  }

  private renderRooms(rooms: IRoom[]): void {
    if (rooms.length === 0) {
      this.roomsNode.replaceChildren(el('li', { className: 'jp-party-empty' }, 'No live rooms'));
      return;
    }
    this.roomsNode.replaceChildren(
      ...rooms.map(room => {
        const item = el('li', { className: 'jp-party-item jp-party-room' });
        item.dataset.party = room.party;
        item.dataset.room = room.room;
        const n = room.connections;
        item.append(
          el('span', { className: 'jp-party-name' }, `${room.party}/${room.room}`),
          el('span', { className: 'jp-party-connections' }, ` ${n} connection${n === 1 ? '' : 's'}`),
          ...(room.node ? [el('span', { className: 'jp-party-node' }, ` on node ${room.node}`)] : []),
          el(
            'span',
            { className: 'jp-party-activity' },
            `, active ${new Date(room.last_activity * 1000).toLocaleTimeString()}`
          ),
          el(
            'div',
            { className: 'jp-party-actions' },
            this.button('copy read link', () => this.copyLink(room, 'read')),
            this.button('copy write link', () => this.copyLink(room, 'write')),
            this.button('open console', () => this.openConsole(room)),
            this.button('logs', () => this.showLog(room.party)),
            this.button('inspect', () => this.inspect(room)),
            this.button('evict', () => this.evict(room))
          ),
          this.sparklines(room)
        );
        return item;
      })
    );
  }

  /** Keep the last SPARK_POINTS samples of each live room's counters. */
  private sample(rooms: IRoom[]): void {
    const now = Date.now() / 1000;
    const live = new Set<string>();
    for (const room of rooms) {
      const key = `${room.party}/${room.room}`;
      live.add(key);
      const samples = this.history.get(key) ?? [];
      samples.push({ time: now, room });
      this.history.set(key, samples.slice(-SPARK_POINTS));
    }
    for (const key of this.history.keys()) {
      if (!live.has(key)) {
        this.history.delete(key);
      }
    }
  }

  /** Messages/s in and out, and bytes/s, between successive samples, as small line charts. */
  private sparklines(room: IRoom): HTMLElement {
    const samples = this.history.get(`${room.party}/${room.room}`) ?? [];
    const rates = (field: keyof IRoom) =>
      samples.slice(1).map((s, i) => {
        const before = samples[i];
        const delta = (s.room[field] as number) - (before.room[field] as number);
        return Math.max(0, delta) / Math.max(s.time - before.time, 1e-3);
      });
    const line = (label: string, field: keyof IRoom, unit: string) => {
      const values = rates(field);
      const last = values.length ? values[values.length - 1] : 0;
      const chart = el('span', { className: 'jp-party-spark', title: `${label} per second` });
      chart.dataset.kind = field;
      chart.innerHTML = sparkSvg(values);
      return el('span', { className: 'jp-party-rate' }, `${label} `, chart, ` ${last.toFixed(1)}${unit}`);
    };
    return el(
      'div',
      { className: 'jp-party-sparklines' },
      line('in', 'messages_in', '/s'),
      line('out', 'messages_out', '/s'),
      line('bytes', 'bytes_out', ' B/s')
    );
  }

  private async inspect(room: IRoom): Promise<void> {
    this.inspected = room;
    const seen = await this.api.inspect(room);
    if (this.inspected !== room) {
      return; // another room was picked meanwhile
    }
    this.inspectTitle.textContent = `Inspector: ${room.party}/${room.room}`;
    const alarm = seen.alarm === null ? 'none' : new Date(seen.alarm).toLocaleString();
    const nodes: (Node | string)[] = [el('div', {}, `alarm: ${alarm}`)];
    if (seen.document) {
      const types = Object.entries(seen.document.types)
        .map(([name, kind]) => `${name}${kind ? ` (${kind})` : ''}`)
        .join(', ');
      nodes.push(el('div', {}, `document: ${seen.document.bytes} bytes; ${types || 'empty'}`));
    }
    nodes.push(el('div', { className: 'jp-party-subtitle' }, 'Connections'));
    const connections = seen.connections.map(c => {
      const who = c.guest ? `guest ${c.user ?? ''}` : `user ${c.user ?? ''}`;
      const since = new Date(c.since * 1000).toLocaleTimeString();
      const tags = c.tags.length ? `, tags ${c.tags.join(' ')}` : '';
      const text = `${c.id}: ${who}, ${c.access}${tags}, since ${since}, in ${c.messages_in} / out ${c.messages_out}`;
      const item = el('li', { className: 'jp-party-item jp-party-connection' }, text);
      item.dataset.access = c.access;
      return item;
    });
    nodes.push(el('ul', { className: 'jp-party-list' }, ...connections));
    nodes.push(el('div', { className: 'jp-party-subtitle' }, `Storage${seen.truncated ? ' (first 1,000 keys)' : ''}`));
    nodes.push(el('ul', { className: 'jp-party-list' }, ...seen.storage.map(s => this.storedItem(room, s))));
    this.inspectNode.replaceChildren(...nodes);
  }

  private storedItem(room: IRoom, stored: IStored): HTMLElement {
    const item = el('li', { className: 'jp-party-item jp-party-stored' });
    item.dataset.key = stored.key;
    item.append(el('span', { className: 'jp-party-name' }, stored.key), ` ${stored.size} bytes`);
    if (stored.json === undefined) {
      item.append(el('pre', { className: 'jp-party-error' }, stored.bytes ?? ''));
    } else {
      const editor = el('textarea', { className: 'jp-party-value', value: stored.json, rows: 3 });
      item.append(
        editor,
        this.button('save', async () => {
          await this.api.store(room, stored.key, JSON.parse(editor.value));
          this.say(`${stored.key} saved`);
          await this.inspect(room);
        })
      );
    }
    item.append(
      this.button('delete', async () => {
        await this.api.unstore(room, stored.key);
        this.say(`${stored.key} deleted`);
        await this.inspect(room);
      })
    );
    return item;
  }

  private renderWorkers(workers: IWorker[]): void {
    this.workersNode.replaceChildren(
      ...workers.map(w => {
        const item = el('li', { className: 'jp-party-item jp-party-worker' });
        const where = w.pid === null ? 'in the server process' : `pid ${w.pid}`;
        const restarts = `${w.restarts} restart${w.restarts === 1 ? '' : 's'}`;
        item.append(el('span', { className: 'jp-party-name' }, `worker ${w.worker}`), ` ${where}, ${restarts}`);
        if (w.last_exit) {
          item.append(el('div', { className: 'jp-party-error' }, `last exit: ${w.last_exit}`));
        }
        return item;
      })
    );
  }

  private button(label: string, action: () => Promise<void> | void): HTMLButtonElement {
    const button = el('button', { className: 'jp-party-button', textContent: label });
    button.onclick = async () => {
      try {
        await action();
      } catch (error) {
        this.say(`${label} failed: ${error}`, true);
      }
    };
    return button;
  }

  private async copyLink(room: IRoom, access: 'read' | 'write'): Promise<void> {
    const url = await this.api.share(room, access);
    this.linkNode.value = url;
    this.linkNode.dataset.access = access;
    Clipboard.copyToSystem(url);
    this.say(`${access} link for ${room.party}/${room.room} copied`);
  }

  private async openConsole(room: IRoom): Promise<void> {
    // Open the tab within the click (popup blockers), then point it at a fresh link.
    const tab = window.open('', '_blank');
    try {
      const url = await this.api.share(room, 'write');
      if (tab) {
        tab.opener = null;
        tab.location.href = url;
      }
    } catch (error) {
      tab?.close();
      throw error;
    }
  }

  private async showLog(party: string): Promise<void> {
    this.logParty = party;
    this.logNext = 0;
    this.logNode.textContent = '';
    this.logTitle.textContent = `Log: ${party}`;
    await this.pollLog();
  }

  private async pollLog(): Promise<void> {
    const party = this.logParty;
    if (party === null) {
      return;
    }
    const { records, next } = await this.api.logs(party, this.logNext);
    if (party !== this.logParty) {
      return; // another party was picked meanwhile
    }
    this.logNext = next;
    const lines = records.map(r => {
      const time = new Date(r.time * 1000).toLocaleTimeString();
      return `${time} ${r.room ?? '-'} ${r.kind}: ${r.text.replace(/\n$/, '')}\n`;
    });
    if (lines.length) {
      const all = (this.logNode.textContent + lines.join('')).split('\n');
      this.logNode.textContent = all.slice(-MAX_LOG_LINES - 1).join('\n');
      this.logNode.scrollTop = this.logNode.scrollHeight;
    }
  }

  private async evict(room: IRoom): Promise<void> {
    try {
      await this.api.evict(room);
      this.say(`${room.party}/${room.room} evicted`);
    } catch (error) {
      if (error instanceof ServerConnection.ResponseError && error.response.status === 404) {
        this.say(`${room.party}/${room.room} is no longer live`);
      } else {
        throw error;
      }
    }
    await this.refresh();
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-party:panel',
  description: 'A side panel listing parties and live rooms.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new PartiesPanel();
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'jupyter-party');

    app.commands.addCommand('jupyter-party:show-panel', {
      label: 'Parties: Show panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand('jupyter-party:refresh', {
      label: 'Parties: Refresh',
      execute: () => panel.refresh()
    });
    for (const command of ['jupyter-party:show-panel', 'jupyter-party:refresh']) {
      palette?.addItem({ command, category: 'Parties' });
    }
    // A first visit shows the panel; after that, JupyterLab's own layout restoring decides.
    void app.restored.then(() => {
      if (window.localStorage.getItem(WELCOMED) === null) {
        window.localStorage.setItem(WELCOMED, '1');
        app.shell.activateById(panel.id);
      }
    });
  }
};

const WELCOMED = 'jupyter-party:welcomed';

export default plugin;
