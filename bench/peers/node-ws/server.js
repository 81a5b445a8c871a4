// Benchmark peer: Node's `ws`. The contract every peer implements:
//   /echo  — every text or binary frame is sent back unchanged;
//   /relay — every frame is relayed to every other connected /relay client.
// Prints `listening on http://ADDR` once ready (PORT=0 picks a free port).
const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');

const server = http.createServer((_, res) => { res.writeHead(400); res.end('WebSocket only\n'); });
const echo = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
const relay = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });

server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?')[0];
  const wss = path === '/echo' ? echo : path === '/relay' ? relay : null;
  if (!wss) { socket.destroy(); return; }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
echo.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
relay.on('connection', (ws) => ws.on('message', (data, isBinary) => {
  for (const client of relay.clients) {
    if (client !== ws && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
  }
}));
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
