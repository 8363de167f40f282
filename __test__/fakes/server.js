'use strict'
// A scripted loopback HTTP server: records every request and answers with the next scripted
// reply (or the default). Always 127.0.0.1, always closed by the test.
const http = require('node:http')

// A reply: { status, headers, body } (body: string | Buffer | object -> JSON), or
// { hang: true } (never answer), { resetMidBody: true } (headers and half a body, then reset),
// or a function (req, res) for anything else.
async function startServer(defaultReply = { status: 404, body: '' }) {
  const requests = []
  const script = []
  const sockets = new Set()
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const url = new URL(req.url, 'http://127.0.0.1')
      requests.push({
        method: req.method,
        path: url.pathname,
        rawPath: req.url.split('?')[0],
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        rawBuffer: Buffer.concat(chunks), // the bytes as sent (a gzip body, say)
      })
      const reply = script.length > 0 ? script.shift() : defaultReply
      answer(reply, req, res)
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    port,
    url: `http://127.0.0.1:${port}/`,
    requests,
    /** Queue replies, answered in order before the default. */
    queue(...replies) {
      script.push(...replies)
      return this
    },
    setDefault(reply) {
      defaultReply = reply
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

function answer(reply, req, res) {
  if (typeof reply === 'function') return reply(req, res)
  if (reply.hang) return // the test's close() ends it
  const json = reply.body !== undefined && typeof reply.body === 'object' && !Buffer.isBuffer(reply.body)
  const body = json ? JSON.stringify(reply.body) : (reply.body ?? '')
  const headers = { 'content-type': json ? 'application/json; charset=utf-8' : 'text/plain', ...(reply.headers || {}) }
  if (reply.resetMidBody) {
    res.writeHead(reply.status ?? 200, { ...headers, 'content-length': '1000' })
    res.write(Buffer.from(body).subarray(0, 10))
    setTimeout(() => res.socket && res.socket.destroy(), 5)
    return
  }
  res.writeHead(reply.status ?? 200, headers)
  res.end(body)
}

module.exports = { startServer, answerForTests: answer }
