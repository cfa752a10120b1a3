// A router per capability; all share the validation hook that turns zod issues into problem+json.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { AuthEnv } from './auth';
import { problem } from './problem';

export function newRouter() {
  return new OpenAPIHono<AuthEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issues = result.error.issues.map((i) => ({
        path: i.path.map(String).join('.') || '(body)',
        message:
          i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
      }));
      return problem(c, 400, 'validation_failed', 'the request does not match the schema', issues);
    },
  });
}

export const BEARER = [{ bearer: [] }];
