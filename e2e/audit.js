'use strict'
// The leak audit: does any secret value appear in anything the browser received or holds?
// Each value is looked for as it is and in the encodings a leak would most likely take.
function encodings(value) {
  return new Set([
    value,
    JSON.stringify(value).slice(1, -1),
    encodeURIComponent(value),
    Buffer.from(value).toString('base64'),
    Buffer.from(value).toString('base64url'),
  ])
}

/**
 * @param {Record<string, string>} artifacts where -> text (the HTML, each response, window, console)
 * @param {Record<string, string>} secrets name -> value
 * @returns {{ where: string, secret: string }[]} one finding per secret per place (names, never values)
 */
function audit(artifacts, secrets) {
  const findings = []
  for (const [name, value] of Object.entries(secrets)) {
    if (typeof value !== 'string' || value.length < 4) continue
    const forms = encodings(value)
    for (const [where, text] of Object.entries(artifacts)) {
      if ([...forms].some((f) => text.includes(f))) findings.push({ where, secret: name })
    }
  }
  return findings
}

module.exports = { audit }
