// Serving the app over node:http with a listen backlog sized for flash crowds.
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer, type ServerType } from '@hono/node-server';
import { LISTEN_BACKLOG_CONNECTIONS } from '../config/limits';

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
  },
): Promise<{ server: ServerType; port: number }> {
  const server = createAdaptorServer({ fetch, hostname: opts.hostname });
  if (opts.ahead) {
    const [hono] = server.listeners('request') as RequestListener[];
    server.removeAllListeners('request');
    server.on('request', opts.ahead(hono!));
  }
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
