// Proves that a client who hangs up before the server listens for it (while its request is being
// recorded, say) still counts as gone: Node emits a response's `close` only once.
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { onResponseClosed } from '../../src/transfers/transfers.routes';

let server: Server | undefined;
afterEach(() => server?.close());

/** A server whose one request is answered by `answer`; resolves with its response once closed. */
async function closedResponse(
  answer: (res: ServerResponse) => void,
  client: (socket: ReturnType<typeof connect>) => void,
): Promise<ServerResponse> {
  let closed!: (res: ServerResponse) => void;
  const seen = new Promise<ServerResponse>((resolve) => (closed = resolve));
  server = createServer((req, res) => {
    req.resume();
    res.once('close', () => closed(res));
    answer(res);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
    socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}');
    client(socket);
  });
  socket.on('error', () => {});
  return seen;
}

describe('onResponseClosed', () => {
  it('calls gone at once for a response the client closed before anyone listened', async () => {
    // Never answered; the client hangs up once the request is sent.
    const res = await closedResponse(
      () => {},
      (socket) => setTimeout(() => socket.destroy(), 50),
    );
    let gone = 0;
    const stop = onResponseClosed(res, () => gone++);
    expect(gone).toBe(1);
    stop();
    expect(gone).toBe(1);
  });

  it('does not call gone for a response that was written out before it closed', async () => {
    const res = await closedResponse(
      (r) => r.end('ok'),
      (socket) => socket.on('data', () => socket.destroy()),
    );
    let gone = 0;
    onResponseClosed(res, () => gone++);
    expect(gone).toBe(0);
  });
});
