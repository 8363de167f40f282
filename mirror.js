'use strict'
// The JS mirror of the cache's answers: the hit path. Any call into the addon costs more than a
// JS Map lookup plus a promise, so the answers the Rust cache gives are kept here too, each
// valid until the `freshUntilMs` the cache gave with it (before refresh-ahead is due and
// before expiry). The Rust cache stays the only owner of entries and policy. The protocol
// between the two, correct by construction:
// * every entry has a stamp; the mirror keeps an answer only if, at the moment it is put in
//   (a sync call on this thread), the cache says that stamp is still the key's entry;
// * it keeps an answer only under the key it was asked with, and only when that key is the
//   cache key the addon answered for (its canonical form), so every key the cache's log names
//   is the one key under which the mirror may hold that entry's answer;
// * every removal or replacement in the cache moves a change counter, which the mirror reads
//   from shared memory (a Float64Array over the cache's own) before every hit; when it moved,
//   a sync call lists what was removed, and the mirror drops it before answering;
// * the time an answer may be reused until (refresh-ahead, expiry less a margin) is kept in a
//   min-heap here; at every sync the addon is told the earliest, and its timer moves the same
//   counter then: the hit path reads no clock.
// So the mirror never answers an entry the cache dropped, and holds a subset of the cache's
// entries (never more than maxEntries). Hits answered here are reported back (`takeTouched`)
// so the cache's LRU order stays true. A dropped or replaced answer lets go of its value at
// once (the schedule keeps only a husk until its time).
//
// Parses at ES2018 (webpack 4's parser): no `#private`, `?.`, `??`.

const { SecretValue } = require('./shared.js')

// Url and key in a composite cache key of the addon (keys cannot contain control characters).
const SEP = '\0'
// The change counter of a manager not built yet (the default instance before first use).
const NO_COUNTER = new Float64Array(1)
// Answer times are kept relative to this (ms), so they stay small integers (no boxed doubles).
const BASE_MS = Date.now() - 1000
// Past this many scheduled answers, and when the dead ones are most of them, keep only the live.
const SCHEDULE_SLACK = 1024

function splitCacheKey(cacheKey) {
  const i = cacheKey.lastIndexOf(SEP)
  return i < 0 ? { url: '', key: cacheKey } : { url: cacheKey.slice(0, i), key: cacheKey.slice(i + 1) }
}

// A binary min-heap of answers by `until`: the mirror's own schedule of when answers stop
// being good.
function heapPush(heap, answer) {
  let i = heap.push(answer) - 1
  while (i > 0) {
    const p = (i - 1) >> 1
    if (heap[p].until <= answer.until) break
    heap[i] = heap[p]
    i = p
  }
  heap[i] = answer
}

function heapPop(heap) {
  const top = heap[0]
  const last = heap.pop()
  if (heap.length > 0) {
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= heap.length) break
      const c = l + 1 < heap.length && heap[l + 1].until < heap[l].until ? l + 1 : l
      if (heap[c].until >= last.until) break
      heap[i] = heap[c]
      i = c
    }
    heap[i] = last
  }
  return top
}

// One mirrored answer. A class, so every one has one small fixed shape (there may be many).
class MirroredAnswer {
  constructor(reply, cacheKey) {
    // A value: the promise every hit of this answer returns, resolved with the caller's
    // ISecretValue, made once; both frozen (callers share them: no caller can change what
    // another gets, not even by giving the promise a `then` of its own; a hit allocates nothing). A
    // remembered failure (a cached NOT_FOUND): { code, message, status, expiresOn }, made into
    // a fresh SecretError per hit.
    this.answer =
      reply.code !== undefined && reply.code !== null
        ? { code: reply.code, message: reply.message, status: reply.status, expiresOn: reply.expiresOn }
        : Object.freeze(Promise.resolve(Object.freeze(new SecretValue(reply.value, reply.id, undefined, reply.expiresOn))))
    this.until = reply.freshUntilMs - BASE_MS // when it stops being good (ms after BASE_MS)
    this.epoch = -1 // not yet reported as touched
    this.cacheKey = cacheKey
  }

  // Dropped or replaced: keep nothing of the value (the schedule may hold this until its time).
  release() {
    this.answer = undefined
  }
}

class Mirror {
  constructor() {
    // Off until attached to an addon whose counter this thread can see.
    this.enabled = false
    this.keyedByUrl = false
    // Not keyed by url: key -> answer. Keyed by url: url -> (key -> answer), so a hit builds
    // no string; the last url's map is kept at hand.
    this.hot = new Map()
    this.lastUrl = undefined
    this.lastMap = undefined
    this.due = [] // min-heap of answers by `until`
    this.touched = [] // cache keys answered here since the last fetch
    this.epoch = 0
    this.hits = 0
    // The cache's change counter (shared memory) and the last change this mirror synced to.
    this.counter = NO_COUNTER
    this.seen = 0
    this.native = undefined
  }

  // Follow `native`'s cache. Without a counter this thread sees (a runtime that copies external
  // buffers), there is no mirror: every call asks the addon, and its reply path syncs.
  attach(native) {
    this.native = native
    this.keyedByUrl = native.keyedByUrl
    this.counter = native.changeCounter()
    const probed = native.probeCounter()
    this.enabled = this.counter[0] === probed
    this.seen = probed
    if (!this.enabled) {
      this.counter = NO_COUNTER
      this.seen = 0
    }
  }

  // Whether the cache changed since the last sync (then `sync` before `find`).
  behind() {
    return this.counter[0] !== this.seen
  }

  // The hit path: the answer for (key, url), or undefined. No clock, no string built; only a
  // string key with a string url can be found, so argument checks come after a miss.
  find(secretKey, url) {
    let answer
    if (this.keyedByUrl) {
      let map = this.lastMap
      if (url !== this.lastUrl) {
        map = typeof url === 'string' ? this.hot.get(url) : undefined
        if (map !== undefined) {
          this.lastUrl = url
          this.lastMap = map
        }
      }
      if (map !== undefined) answer = map.get(secretKey)
    } else if (typeof url === 'string') {
      answer = this.hot.get(secretKey)
    }
    if (answer !== undefined) {
      this.hits++
      if (answer.epoch !== this.epoch) {
        answer.epoch = this.epoch
        this.touched.push(answer.cacheKey)
      }
    }
    return answer
  }

  // The cache keys answered here since the last call, for the cache's LRU order.
  takeTouched() {
    const touched = this.touched
    if (touched.length > 0) {
      this.touched = []
      this.epoch++
    }
    return touched
  }

  // Follow the cache's change log: drop what it removed (all, when the log overflowed), and
  // say whether the entry of `cacheKey` with `stamp` is still current. Returns the addon's
  // sync (its `evicted` and background `events` are the manager's to emit). Runs on this
  // thread, so what the mirror holds after it is in the cache.
  sync(cacheKey, stamp) {
    // Answers whose time has come leave first; the cache's timer is then set for the next.
    const due = this.due
    const now = Date.now() - BASE_MS
    while (due.length > 0 && due[0].until <= now) this.dropIfHeld(heapPop(due))
    const wake = due.length > 0 ? due[0].until + BASE_MS : 0
    const s = this.native.sync(this.seen, cacheKey === undefined ? null : cacheKey, stamp, wake)
    this.seen = s.changes
    if (s.removed === undefined || s.removed === null) {
      this.clear()
    } else {
      for (const k of s.removed) {
        const parts = splitCacheKey(k)
        this.delete(parts.url, parts.key)
      }
    }
    return s
  }

  // Put the addon's reply for (key, url) in, if the protocol allows; else make sure nothing
  // older answers for that key. `closed`: the manager was closed (nothing is kept).
  settle(reply, secretKey, url, closed) {
    if (this.native === undefined) return undefined
    const asked = this.keyedByUrl ? url + SEP + secretKey : secretKey
    const cacheKey = reply.cacheKey === undefined || reply.cacheKey === null ? undefined : reply.cacheKey
    const s = closed ? undefined : this.sync(cacheKey, cacheKey === undefined ? 0 : reply.stamp)
    if (s !== undefined && s.current && cacheKey === asked && this.enabled && reply.freshUntilMs > Date.now()) {
      // `asked`, not the reply's equal string: the map's own key, no second copy per entry.
      const answer = new MirroredAnswer(reply, asked)
      this.set(url, secretKey, answer)
      heapPush(this.due, answer)
      // Answers replaced or dropped early stay in the schedule (as husks) until their time;
      // when they are most of it (an app that invalidates a lot), keep only the live ones.
      if (this.due.length > SCHEDULE_SLACK && this.due.length > 4 * this.size()) this.rebuildSchedule()
    } else {
      this.delete(url, secretKey)
    }
    return s
  }

  set(url, secretKey, answer) {
    let map = this.hot
    if (this.keyedByUrl) {
      map = this.hot.get(url)
      if (map === undefined) {
        map = new Map()
        this.hot.set(url, map)
      }
    }
    const before = map.get(secretKey)
    if (before !== undefined) before.release()
    map.set(secretKey, answer)
  }

  delete(url, secretKey) {
    const map = this.keyedByUrl ? this.hot.get(url) : this.hot
    if (map === undefined) return
    const before = map.get(secretKey)
    if (before === undefined) return
    before.release()
    map.delete(secretKey)
    if (this.keyedByUrl && map.size === 0) {
      this.hot.delete(url)
      if (this.lastMap === map) {
        this.lastUrl = undefined
        this.lastMap = undefined
      }
    }
  }

  clear() {
    const release = (answer) => answer.release()
    if (this.keyedByUrl) this.hot.forEach((map) => map.forEach(release))
    else this.hot.forEach(release)
    this.hot.clear()
    this.due = []
    this.lastUrl = undefined
    this.lastMap = undefined
  }

  // Close: nothing kept, nothing reported back.
  close() {
    this.clear()
    this.touched = []
  }

  size() {
    if (!this.keyedByUrl) return this.hot.size
    let n = 0
    this.hot.forEach((map) => {
      n += map.size
    })
    return n
  }

  // Whether the mirror still holds this very answer (not a newer one for its key).
  holds(answer) {
    const parts = splitCacheKey(answer.cacheKey)
    const map = this.keyedByUrl ? this.hot.get(parts.url) : this.hot
    return map !== undefined && map.get(parts.key) === answer
  }

  dropIfHeld(answer) {
    if (!this.holds(answer)) return
    const parts = splitCacheKey(answer.cacheKey)
    this.delete(parts.url, parts.key)
  }

  rebuildSchedule() {
    const live = this.due.filter((answer) => this.holds(answer))
    live.sort((a, b) => a.until - b.until) // a sorted array is a heap
    this.due = live
  }
}

module.exports = { Mirror, splitCacheKey, SEP }
