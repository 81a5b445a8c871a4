// Benchmark peer: Bun's built-in WebSocket server (uWebSockets inside).
// /echo echoes every frame; /relay relays every frame to every other /relay client.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  fetch(req, server) {
    const path = new URL(req.url).pathname;
    if ((path === "/echo" || path === "/relay") && server.upgrade(req, { data: { path } })) return;
    return new Response("WebSocket only\n", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 64 * 1024,
    open(ws) {
      if (ws.data.path === "/relay") ws.subscribe("relay");
    },
    message(ws, message) {
      if (ws.data.path === "/echo") ws.send(message);
      else ws.publish("relay", message); // every subscriber but the sender
    },
  },
});
console.log(`listening on http://127.0.0.1:${server.port}`);
