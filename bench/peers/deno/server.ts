// Benchmark peer: Deno's built-in WebSocket server (fastwebsockets inside).
// /echo echoes every frame; /relay relays every frame to every other /relay client.
const relay = new Set<WebSocket>();
Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 0),
  onListen: ({ hostname, port }) => console.log(`listening on http://${hostname}:${port}`),
}, (req) => {
  const path = new URL(req.url).pathname;
  if (path !== "/echo" && path !== "/relay") return new Response("WebSocket only\n", { status: 400 });
  const { socket, response } = Deno.upgradeWebSocket(req);
  if (path === "/echo") {
    socket.onmessage = (e) => socket.send(e.data);
  } else {
    socket.onopen = () => relay.add(socket);
    socket.onclose = () => relay.delete(socket);
    socket.onmessage = (e) => {
      for (const other of relay) if (other !== socket && other.readyState === WebSocket.OPEN) other.send(e.data);
    };
  }
  return response;
});
