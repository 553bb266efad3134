// Bun's built-in WebSocket server (uWebSockets), the second push peer of
// `cargo bench --bench peers` (issue 8): TLS, topic pub/sub as Bun's
// documentation shows it (server.publish to subscribed sockets), a new
// subscriber gets the latest message, POST /pub publishes, and the same
// static JSON for wrk. Environment: PORT, CERT, KEY, STATIC.
const port = Number(process.env.PORT);
const staticFile = process.env.STATIC;
let last = null;
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  tls: { cert: Bun.file(process.env.CERT), key: Bun.file(process.env.KEY) },
  async fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname === "/ws") {
      if (server.upgrade(req)) return;
      return new Response("upgrade required", { status: 400 });
    }
    if (url.pathname === "/pub" && req.method === "POST") {
      last = await req.text();
      server.publish("status", last);
      return new Response("ok");
    }
    if (url.pathname === "/displays/status.json") {
      return new Response(Bun.file(staticFile), { headers: { "content-type": "application/json" } });
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    open(ws) {
      ws.subscribe("status");
      if (last !== null) ws.send(last);
    },
    message() {},
  },
});
console.log(`listening on ${server.port}`);
