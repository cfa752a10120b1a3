// Serving the app over node:http with a listen backlog sized for flash crowds.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createAdaptorServer, type ServerType } from '@hono/node-server';
import {
  HTTP_HEADERS_BYTES_MAX,
  HTTP_HEADERS_RECEIVE_MS_MAX,
  HTTP_RECEIVE_CHECK_INTERVAL_MS,
  HTTP_REQUEST_RECEIVE_MS_MAX,
  LISTEN_BACKLOG_CONNECTIONS,
} from '../config/limits';
import { problemJson } from './problem';

/** How long a client may take to send a request (headers, then all of it); see limits.ts. */
export type ReceiveLimits = { headersMs: number; requestMs: number };

/**
 * What Node's parser refused, answered as problem+json like every other error (Node's own answers
 * carry no body): a request too slow to arrive, headers too large, or bytes that are not HTTP.
 * As Node does, an answer goes only where none has begun, and then the connection is closed.
 */
function clientErrorAnswerer(receive: ReceiveLimits) {
  const tooSlow =
    `send the headers within ${receive.headersMs} ms ` +
    `and the whole request within ${receive.requestMs} ms`;
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    const begun = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (socket.writable && !begun?.headersSent && err.code !== 'ECONNRESET') {
      const [status, reason, code, detail] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ([408, 'Request Timeout', 'request_timeout', tooSlow] as const)
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? ([431, 'Request Header Fields Too Large', 'headers_too_large', undefined] as const)
            : ([400, 'Bad Request', 'malformed_request', undefined] as const);
      const body = problemJson(begun?.req.url, status, code, detail);
      socket.write(
        `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n` +
          `Content-Type: application/problem+json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}

/**
 * HTTP/1.1 requires a Host header (RFC 9112 §3.2). Node checks it itself and answers a bare 400
 * with no body, so the server lets such requests through and they are refused here, in the
 * contract's shape, before anything reads them.
 */
function requiringHost(next: RequestListener): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.host !== undefined || req.httpVersion !== '1.1') return next(req, res);
    const body = problemJson(
      req.url,
      400,
      'malformed_request',
      'an HTTP/1.1 request needs a Host header',
    );
    res.writeHead(400, {
      connection: 'close',
      'content-type': 'application/problem+json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  };
}

/**
 * Listens on host:port. Node's default backlog (511) is smaller than a flash crowd's connects: the
 * kernel drops the SYNs past it and each client retries after 1, 3, then 7 s (the lab's runs with
 * 1,000 connections overflowed the listen queue 13,992 times before this; none after). The
 * kernel caps the backlog at net.core.somaxconn.
 */
export function listenHttp(
  fetch: (request: Request) => Response | Promise<Response>,
  opts: {
    port: number;
    hostname: string;
    /** Serves some requests itself before they reach `fetch` (the money-movement lane). */
    ahead?: (next: RequestListener) => RequestListener;
    /** Tests shorten these; the service uses limits.ts. */
    receive?: ReceiveLimits;
  },
): Promise<{ server: ServerType; port: number }> {
  const receive = opts.receive ?? {
    headersMs: HTTP_HEADERS_RECEIVE_MS_MAX,
    requestMs: HTTP_REQUEST_RECEIVE_MS_MAX,
  };
  const server = createAdaptorServer({
    fetch,
    hostname: opts.hostname,
    serverOptions: {
      headersTimeout: receive.headersMs,
      requestTimeout: receive.requestMs,
      connectionsCheckingInterval: Math.min(HTTP_RECEIVE_CHECK_INTERVAL_MS, receive.headersMs),
      maxHeaderSize: HTTP_HEADERS_BYTES_MAX,
      // Checked by requiringHost, which answers as the contract does.
      requireHostHeader: false,
    },
  });
  server.on('clientError', clientErrorAnswerer(receive));
  const [hono] = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  server.on('request', requiringHost(opts.ahead ? opts.ahead(hono!) : hono!));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(
      { port: opts.port, host: opts.hostname, backlog: LISTEN_BACKLOG_CONNECTIONS },
      () => {
        server.off('error', reject);
        resolve({ server, port: (server.address() as AddressInfo).port });
      },
    );
  });
}
