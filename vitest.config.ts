// Integration tests against real PostgreSQL and Redis; see test/support/global-setup.ts.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Expected warnings (a Redis made unreachable on purpose, say) stay out of the output.
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'error' },
  },
});
