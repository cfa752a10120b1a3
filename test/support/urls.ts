// Database URLs for tests: the server of DATABASE_URL (or the default), any database on it.
const BASE = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/ledgerline';

export function serverUrl(database: string): string {
  const url = new URL(BASE);
  url.pathname = `/${database}`;
  return url.toString();
}

export function adminUrl(): string {
  return serverUrl('postgres');
}
