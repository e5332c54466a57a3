import type { Readable } from 'node:stream'
import type { Socket } from 'node:net'

/**
 * The store server's wire format: frames of [u32 BE payload length][u8 type][payload], so a
 * file written by `cat` travels as raw bytes. A client sends one request frame; the server
 * answers with stdout and stderr frames in the order they were written, then one exit frame.
 */
export const FRAME = {
  /** client -> server: a JSON `ServerRequest`. */
  request: 1,
  /** server -> client: bytes for the client's stdout. */
  stdout: 2,
  /** server -> client: bytes for the client's stderr. */
  stderr: 3,
  /** server -> client: a JSON `ExitMessage`, the last frame. */
  exit: 4,
} as const

export type FrameType = (typeof FRAME)[keyof typeof FRAME]

export interface Frame {
  type: number
  payload: Buffer
}

/** Frames larger than this are refused: a peer sending more is not speaking this protocol. */
export const MAX_FRAME = 16 * 1024 * 1024

/** Run a command line in the server, with host paths relative to `cwd`. */
export interface CliRequest {
  op: 'cli'
  args: string[]
  cwd: string
  stderrIsTTY: boolean
  columns?: number
}

/** Any other request names an operation the server was given (the mount daemon's mount, umount…). */
export interface OpRequest {
  op: string
  [field: string]: unknown
}

export type ServerRequest = CliRequest | OpRequest

export interface ExitMessage {
  code: number
  /** An operation's result, for clients that asked for JSON. */
  result?: unknown
  /** The server is stopping and ran nothing: open the store directly once it has let go. */
  retry?: boolean
}

export function encodeFrame(type: FrameType, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  const head = Buffer.allocUnsafe(5)
  head.writeUInt32BE(body.length, 0)
  head.writeUInt8(type, 4)
  return Buffer.concat([head, body])
}

export const jsonFrame = (type: FrameType, value: unknown): Buffer => encodeFrame(type, JSON.stringify(value))

/** The frames of a stream, as they complete; throws on a frame over MAX_FRAME. */
export async function* readFrames(stream: Readable): AsyncGenerator<Frame> {
  let pending: Buffer = Buffer.alloc(0)
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(0)
      if (length > MAX_FRAME) throw new Error(`frame of ${length} bytes is over the limit of ${MAX_FRAME}`)
      if (pending.length < 5 + length) break
      yield { type: pending.readUInt8(4), payload: pending.subarray(5, 5 + length) }
      pending = pending.subarray(5 + length)
    }
  }
  if (pending.length > 0) throw new Error('connection closed in the middle of a frame')
}

/**
 * The first frame of a socket, read without ending the stream (leaving a `for await` loop would
 * destroy the socket the answer still has to go out on); undefined if the peer hangs up first.
 * The socket keeps flowing, so whatever the peer sends later is dropped and its hang-up is seen.
 */
export function readFirstFrame(socket: Socket): Promise<Frame | undefined> {
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0)
    const done = (err: Error | undefined, frame?: Frame): void => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onEnd)
      if (err) reject(err)
      else resolve(frame)
    }
    const onData = (chunk: Buffer): void => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      if (pending.length < 5) return
      const length = pending.readUInt32BE(0)
      if (length > MAX_FRAME) return done(new Error(`frame of ${length} bytes is over the limit of ${MAX_FRAME}`))
      if (pending.length < 5 + length) return
      done(undefined, { type: pending.readUInt8(4), payload: pending.subarray(5, 5 + length) })
    }
    const onEnd = (): void => done(undefined)
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('error', onEnd)
  })
}
