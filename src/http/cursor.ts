// Keyset pagination cursors: opaque to clients, a tagged integer base64url-encoded, refused with
// 400 when they are not one this API returned.
import { ApiError } from './problem';

export function keysetCursor(tag: string) {
  const shape = new RegExp(`^${tag}[1-9][0-9]{0,18}$`);
  return {
    encode(position: bigint): string {
      return Buffer.from(`${tag}${position}`).toString('base64url');
    },
    decode(cursor: string): bigint {
      const text = Buffer.from(cursor, 'base64url').toString('utf8');
      if (!shape.test(text)) {
        throw new ApiError(400, 'validation_failed', 'cursor is not one this API returned', [
          { path: 'cursor', message: 'invalid' },
        ]);
      }
      return BigInt(text.slice(tag.length));
    },
  };
}
