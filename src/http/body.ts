// Reads a request body once, straight from Node's socket stream, with a byte limit; every later
// reader (validators, handlers) gets the cached text and nothing builds a web stream for it.
import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { visit } from 'jsonc-parser';
import { ApiError } from './problem';

const decoder = new TextDecoder('utf-8');

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, 'payload_too_large', `bodies are limited to ${maxBytes} bytes`);
}

/**
 * Bodies read before Hono saw the request: the money-movement lane reads a body, and hands the
 * request to Hono when anything about it is unusual (src/app/money-lane.ts).
 */
const readAlready = new WeakMap<IncomingMessage, string>();

/** Hands Hono a request whose body has been read already: `readBody` takes this text. */
export function bodyReadAlready(incoming: IncomingMessage, text: string): void {
  readAlready.set(incoming, text);
}

export function readIncoming(incoming: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let settled = false;
    // The listeners are passed inline and stay until the request is collected, ignoring what
    // comes after the answer: each named closure costs an Object.defineProperty under tsx, whose
    // keepNames wraps it (four of them were 1.7 % of the web's profile).
    incoming.on('data', (chunk: Buffer) => {
      if (settled) return;
      bytes += chunk.length;
      if (bytes > maxBytes) {
        settled = true;
        // The rest is drained and dropped so the connection stays usable for the answer.
        incoming.resume();
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    });
    incoming.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(decoder.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    });
    incoming.on('error', (err: Error) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
  });
}

/**
 * Whether some key of `text` may be repeated, decided without parsing: with no backslash in the
 * text every `"` opens or closes a string, so splitting at them leaves the strings at the odd
 * places, and a key is a string followed by a colon. When no key string occurs twice anywhere,
 * no object repeats a key; otherwise (or with escapes, where two spellings may be one key) the
 * scanner decides. A request body is then parsed once, by JSON.parse, not a second time by the
 * scanner (jsonc-parser's visitor was about 1.7 % of the web's profile).
 */
function mayRepeatKey(text: string): boolean {
  if (text.includes('\\')) return true;
  const parts = text.split('"');
  const keys = new Set<string>();
  for (let i = 1; i < parts.length - 1; i += 2) {
    if (!KEY_END.test(parts[i + 1]!)) continue;
    if (keys.has(parts[i]!)) return true;
    keys.add(parts[i]!);
  }
  return false;
}
const KEY_END = /^[ \t\n\r]*:/;

/**
 * The first key an object of `text` repeats, if any. JSON.parse keeps the last of them silently,
 * so `{"amount":"1","amount":"900"}` would mean what only one reader expects: such bodies are
 * refused instead (the scanner is jsonc-parser's; JSON.parse still decides what is valid JSON).
 */
export function repeatedKey(text: string): string | undefined {
  return mayRepeatKey(text) ? scanForRepeatedKey(text) : undefined;
}

/** The first key an object of `text` repeats, by jsonc-parser's scanner. */
export function scanForRepeatedKey(text: string): string | undefined {
  const open: Set<string>[] = [];
  let repeated: string | undefined;
  visit(text, {
    onObjectBegin: () => {
      open.push(new Set());
    },
    onObjectEnd: () => {
      open.pop();
    },
    onObjectProperty: (property) => {
      const keys = open[open.length - 1];
      if (!keys) return;
      if (keys.has(property)) repeated ??= property;
      keys.add(property);
    },
  });
  return repeated;
}

async function readNow(
  raw: Request,
  incoming: IncomingMessage | undefined,
  maxBytes: number,
): Promise<string> {
  if (incoming && typeof incoming.on === 'function' && !incoming.readableDidRead) {
    return readIncoming(incoming, maxBytes);
  }
  // In process (app.request() in tests) there is no socket: read the web Request.
  const buffer = await raw.arrayBuffer();
  if (buffer.byteLength > maxBytes) throw tooLarge(maxBytes);
  return decoder.decode(buffer);
}

/** Every body is bounded; one over `maxBytes` is refused with 413 before it is parsed. */
export function readBody(opts: { maxBytes: number }): MiddlewareHandler {
  const { maxBytes } = opts;
  return async function readBodyOnce(c, next) {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const declared = Number(c.req.header('content-length'));
    if (declared > maxBytes) throw tooLarge(maxBytes);
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    // Read already by the money-movement lane (within the same bound), or read now.
    const text =
      (incoming && readAlready.get(incoming)) ?? (await readNow(c.req.raw, incoming, maxBytes));
    const repeated = text.includes('{') ? repeatedKey(text) : undefined;
    if (repeated !== undefined) {
      throw new ApiError(400, 'validation_failed', 'a JSON object repeats a key', [
        { path: repeated, message: 'repeated key' },
      ]);
    }
    // Hono keeps each body reader's promise here; later json() and text() calls resolve from it.
    (c.req.bodyCache as Record<string, Promise<unknown>>).text = Promise.resolve(text);
    await next();
  };
}
