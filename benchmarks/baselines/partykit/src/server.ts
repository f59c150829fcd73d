// PartyKit baseline: relay every message to every connection of the room, the sender included.
export default class Bcast {
  room: any;
  constructor(room: any) {
    this.room = room;
  }
  onMessage(message: string | ArrayBuffer, _sender: any) {
    this.room.broadcast(message);
  }
}
