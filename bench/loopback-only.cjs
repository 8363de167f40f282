'use strict'
// Preloaded (-r) into the benchmark's Azure SDK process: any connection or DNS lookup of a
// host that is not loopback throws, so nothing in a benchmark can reach Azure whatever an SDK
// would like to do.
const net = require('node:net')
const dns = require('node:dns')

const loopback = (host) => host === undefined || host === 'localhost' || /^127\./.test(host) || host === '::1' || host === '[::1]'
const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (...args) {
  const o = args[0] !== null && typeof args[0] === 'object' ? (Array.isArray(args[0]) ? args[0][0] : args[0]) : { port: args[0], host: args[1] }
  if (o && !o.path && !loopback(o.host)) throw new Error(`blocked a connection to ${o.host}: benchmarks talk to loopback only`)
  return connect.apply(this, args)
}
const lookup = dns.lookup
dns.lookup = function (host, ...rest) {
  if (!loopback(host)) {
    const cb = rest.at(-1)
    return process.nextTick(() => cb(new Error(`blocked a lookup of ${host}: benchmarks talk to loopback only`)))
  }
  return lookup.call(this, host, ...rest)
}
