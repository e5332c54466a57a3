import { Packr } from 'msgpackr'

/** One msgpack codec for every record; plain structures (no record extension) keep the format portable. */
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

export function encode(value: unknown): Buffer {
  return packr.pack(value)
}

export function decode<T>(buf: Uint8Array): T {
  return packr.unpack(buf) as T
}
