// Benchmark peer with Switchboard's chat contract, in Bun (uWebSockets and bun:sqlite inside):
// what a competent Bun developer would write for the same job, so the chat-room figures
// compare like with like. The raw relay (../bun) is only a transport baseline.
//
// The contract, as Switchboard's chat path keeps it:
// - `/ws` with the subprotocol `switchboard.v3`; `?name=` validated (trimmed, 1..32 characters,
//   no control or bidi characters, not "server"; without one, a listener that may not chat),
//   unique per room while connected (a second
//   holder gets `join_refused`); joins and leaves announced to the room.
// - First frame `hello`; `{"type":"join","room"}` answered with `subscribed` (members).
// - `{"type":"chat","room","msg","id"?}`: JSON decoded and validated (a joined room, a string
//   message of 1..2,000 characters without control or bidi characters, an optional string id
//   up to 64), else a typed `error` frame. Each message gets its room's next `seq` and is
//   committed to SQLite in WAL mode with `synchronous=FULL` before it is broadcast to the room
//   (the sender included), as `{"type":"chat","room","seq","name","msg","ts"}`.
// - Commits are grouped: the messages that arrive within one turn of the event loop are
//   written in one transaction (Switchboard's store does the same), then broadcast in order.
// - A message id seen before in the room is acknowledged with its first seq, not stored twice.
import { Database } from "bun:sqlite";

const MAX_NAME = 32;
const MAX_TEXT = 2000;
const MAX_ID = 64;
const ROOM_RE = /^[a-z0-9_.-]{1,64}$/;
// C0/C1 controls (but tab and newline in messages), bidi overrides and isolates, zero-width
// joiners: what Switchboard's `is_deceptive_char` refuses.
const NAME_BAD = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;
const TEXT_BAD = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;

const db = new Database(process.env.DB ?? ":memory:");
db.exec("PRAGMA journal_mode=WAL");
db.exec("PRAGMA synchronous=FULL");
db.exec(`CREATE TABLE IF NOT EXISTS messages (
  room TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, msg TEXT NOT NULL,
  id TEXT, ts INTEGER NOT NULL, PRIMARY KEY (room, seq))`);
db.exec("CREATE UNIQUE INDEX IF NOT EXISTS messages_id ON messages (room, name, id) WHERE id IS NOT NULL");
const insert = db.prepare("INSERT INTO messages (room, seq, name, msg, id, ts) VALUES (?, ?, ?, ?, ?, ?)");
const lastSeq = db.prepare("SELECT COALESCE(MAX(seq), 0) AS seq FROM messages WHERE room = ?");
const seenId = db.prepare("SELECT seq FROM messages WHERE room = ? AND name = ? AND id = ?");

// A connection without a name is a listener (a viewer of a live feed): it joins and hears, is
// not a member, and may not chat.
type Conn = { name: string | null; rooms: Set<string> };
type Pending = { room: string; seq: number; name: string; msg: string; id: string | null; ts: number };

const seqs = new Map<string, number>(); // room -> last seq
const members = new Map<string, Map<string, number>>(); // room -> name -> connections
let pending: Pending[] = [];

function nextSeq(room: string): number {
  const seq = (seqs.get(room) ?? (lastSeq.get(room) as { seq: number }).seq) + 1;
  seqs.set(room, seq);
  return seq;
}

const commit = db.transaction((rows: Pending[]) => {
  for (const r of rows) insert.run(r.room, r.seq, r.name, r.msg, r.id, r.ts);
});

function flush() {
  const rows = pending;
  pending = [];
  commit(rows);
  for (const r of rows) {
    const frame: Record<string, unknown> = { type: "chat", room: r.room, seq: r.seq, name: r.name, msg: r.msg, ts: r.ts };
    if (r.id !== null) frame.id = r.id;
    server.publish(r.room, JSON.stringify(frame));
  }
}

function error(ws: { send(s: string): unknown }, code: string, message: string) {
  ws.send(JSON.stringify({ type: "error", code, message }));
}

function validName(raw: string | null): string | null {
  const name = (raw ?? "").trim();
  if (name.length === 0 || [...name].length > MAX_NAME || NAME_BAD.test(name)) return null;
  return name.toLowerCase() === "server" ? null : name;
}

let sessions = 0;
const server = Bun.serve<Conn, {}>({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname !== "/ws") return new Response("not found\n", { status: 404 });
    const protocols = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
    if (!protocols.includes("switchboard.v3")) return new Response("subprotocol switchboard.v3 required\n", { status: 400 });
    const raw = url.searchParams.get("name");
    const name = raw === null ? null : validName(raw);
    if (raw !== null && name === null) return new Response("invalid name\n", { status: 400 });
    const upgraded = server.upgrade(req, {
      data: { name, rooms: new Set<string>() },
      headers: { "Sec-WebSocket-Protocol": "switchboard.v3" },
    });
    return upgraded ? undefined : new Response("WebSocket only\n", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 64 * 1024,
    open(ws) {
      sessions += 1;
      ws.send(JSON.stringify({ type: "hello", protocol: 3, server: "bun-chat", session: sessions, name: ws.data.name }));
    },
    message(ws, raw) {
      let cmd: any;
      try {
        cmd = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
      } catch {
        return error(ws, "invalid_message", "not JSON");
      }
      if (cmd === null || typeof cmd !== "object" || typeof cmd.room !== "string") {
        return error(ws, "invalid_message", "no room");
      }
      const room = cmd.room.trim().toLowerCase();
      if (!ROOM_RE.test(room)) return error(ws, "invalid_message", "bad room");
      switch (cmd.type) {
        case "join": {
          if (ws.data.rooms.has(room)) return error(ws, "already_joined", room);
          if (ws.data.name === null) {
            ws.data.rooms.add(room);
            ws.subscribe(room);
            const list = [...(members.get(room) ?? [])].map(([name, connections]) => ({ name, connections }));
            return void ws.send(JSON.stringify({ type: "subscribed", room, epoch: "bun", resume: { outcome: "fresh" }, members: list }));
          }
          const names = members.get(room) ?? new Map<string, number>();
          members.set(room, names);
          if (names.has(ws.data.name)) {
            return void ws.send(JSON.stringify({ type: "join_refused", room, code: "name_taken" }));
          }
          names.set(ws.data.name, 1);
          ws.data.rooms.add(room);
          // Announced to the members already there, as Switchboard does.
          ws.publish(room, JSON.stringify({ type: "joined", room, member: { name: ws.data.name, connections: 1 } }));
          ws.subscribe(room);
          const list = [...names].map(([name, connections]) => ({ name, connections }));
          ws.send(JSON.stringify({ type: "subscribed", room, epoch: "bun", resume: { outcome: "fresh" }, members: list }));
          return;
        }
        case "chat": {
          if (!ws.data.rooms.has(room)) return error(ws, "not_joined", room);
          const name = ws.data.name;
          if (name === null) return error(ws, "name_required", "listeners may not chat");
          const msg = cmd.msg;
          if (typeof msg !== "string") return error(ws, "invalid_message", "msg must be a string");
          const text = msg.replace(/[\r\n]+$/, "");
          if (text.trim().length === 0) return error(ws, "invalid_message", "empty");
          if (TEXT_BAD.test(text) || [...text].length > MAX_TEXT) return error(ws, "invalid_message", "bad text");
          const id = cmd.id ?? null;
          if (id !== null && (typeof id !== "string" || id.length === 0 || id.length > MAX_ID)) {
            return error(ws, "invalid_message", "bad id");
          }
          if (id !== null) {
            const seen = (seenId.get(room, name, id) as { seq: number } | null)
              ?? pending.find((p) => p.room === room && p.name === name && p.id === id);
            if (seen) return void ws.send(JSON.stringify({ type: "ack", room, id, seq: seen.seq }));
          }
          if (pending.length === 0) setImmediate(flush);
          pending.push({ room, seq: nextSeq(room), name, msg: text, id, ts: Date.now() });
          return;
        }
        case "leave": {
          if (!ws.data.rooms.delete(room)) return error(ws, "not_joined", room);
          ws.unsubscribe(room);
          if (ws.data.name !== null) leave(room, ws.data.name);
          return;
        }
        default:
          return error(ws, "invalid_message", "unknown type");
      }
    },
    close(ws) {
      const name = ws.data.name;
      if (name !== null) for (const room of ws.data.rooms) leave(room, name);
    },
  },
});

function leave(room: string, name: string) {
  const names = members.get(room);
  if (!names) return;
  names.delete(name);
  if (names.size === 0) members.delete(room);
  else server.publish(room, JSON.stringify({ type: "left", room, member: { name, connections: 0 } }));
}

console.log(`listening on http://127.0.0.1:${server.port}`);
