// Database URLs for tests: the server of DATABASE_URL (or the default), any database on it.
export const DATABASE_URL_BASE =
  process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/ledgerline';

export function serverUrl(database: string): string {
  const url = new URL(DATABASE_URL_BASE);
  url.pathname = `/${database}`;
  return url.toString();
}

export function adminUrl(): string {
  return serverUrl('postgres');
}
