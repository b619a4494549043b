// JSON-RPC 2.0 over the daemon's WebSocket. The token buys a one-use ticket (POST /ticket);
// the socket is opened with the ticket, so the token never appears in a URL. Integers past
// 2^53 (a 64-bit job's totals and nonces) arrive as BigInt, not rounded to the nearest double.

export class AuthError extends Error {}

// JSON.parse's reviver sees each number's source text: an integer a double cannot hold
// exactly is kept whole as a BigInt (everything else stays a Number).
function exactIntegers(_key, value, context) {
  if (typeof value === "number" && !Number.isSafeInteger(value) && typeof context?.source === "string" && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

// And back: a BigInt goes out as the same integer (JSON.stringify refuses BigInt).
function bigIntegers(_key, value) {
  return typeof value === "bigint" ? (JSON.rawJSON ? JSON.rawJSON(value.toString()) : value.toString()) : value;
}

export async function connect(token, onNotification, onClose) {
  const reply = await fetch("/ticket", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (reply.status === 401 || reply.status === 429) throw new AuthError(reply.status === 401 ? "token refused" : "too many failed attempts; wait a minute");
  if (!reply.ok) throw new Error(`ticket: HTTP ${reply.status}`);
  const { ticket } = await reply.json();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error("the WebSocket did not open")), { once: true });
  });
  return new Client(ws, onNotification, onClose);
}

class Client {
  constructor(ws, onNotification, onClose) {
    this.ws = ws;
    this.next = 1;
    this.pending = new Map();
    ws.addEventListener("message", (e) => {
      let msg;
      try { msg = JSON.parse(e.data, exactIntegers); } catch { return; }
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
        else resolve(msg.result);
      } else if (msg.method && msg.params) {
        onNotification(msg.method, msg.params);
      }
    });
    ws.addEventListener("close", () => {
      for (const { reject } of this.pending.values()) reject(new Error("connection closed"));
      this.pending.clear();
      onClose();
    });
  }

  call(method, params = {}) {
    const id = this.next++;
    this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }, bigIntegers));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  // A subscription (search.subscribe) and its end: the server keeps notifying until told.
  subscribe(job) { return this.call("search.subscribe", { job_id: job }); }
  unsubscribe(id) { return this.call("search.unsubscribe", [id]); }

  close() { this.ws.close(); }
}
