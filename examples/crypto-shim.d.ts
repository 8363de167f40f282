// The one Node API the example uses, declared so the type check needs no @types/node.
export interface Hmac {
  update(data: string): Hmac
  digest(encoding: 'hex'): string
}
export function createHmac(algorithm: string, key: string): Hmac
