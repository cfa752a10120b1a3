// Proves the environment's worker clocks: defaults, overrides, and refusal of values that would
// let a lease run out between two renewals.
import { describe, expect, it } from 'vitest';
import { loadWorkerSettings } from '../../src/config/env';
import {
  CLAIM_INTERVAL_MS,
  LEASE_MS,
  SWEEP_AFTER_MS,
  SWEEP_INTERVAL_MS,
} from '../../src/config/limits';

describe('worker clocks from the environment', () => {
  it('default to the limits and take overrides', () => {
    expect(loadWorkerSettings({})).toEqual({
      metricsPort: undefined,
      leaseMs: LEASE_MS,
      claimIntervalMs: CLAIM_INTERVAL_MS,
      sweepAfterMs: SWEEP_AFTER_MS,
      sweepIntervalMs: SWEEP_INTERVAL_MS,
    });
    expect(
      loadWorkerSettings({ LEASE_MS: '2000', CLAIM_INTERVAL_MS: '200', SWEEP_AFTER_MS: '' }),
    ).toEqual({
      metricsPort: undefined,
      leaseMs: 2000,
      claimIntervalMs: 200,
      sweepAfterMs: SWEEP_AFTER_MS,
      sweepIntervalMs: SWEEP_INTERVAL_MS,
    });
  });

  it('refuse non-numbers, values out of bounds and renewals slower than half a lease', () => {
    expect(() => loadWorkerSettings({ LEASE_MS: 'soon' })).toThrow(/LEASE_MS/);
    expect(() => loadWorkerSettings({ METRICS_PORT: '70000' })).toThrow(/METRICS_PORT/);
    expect(loadWorkerSettings({ METRICS_PORT: '9464' }).metricsPort).toBe(9464);
    expect(() => loadWorkerSettings({ LEASE_MS: '10' })).toThrow(/LEASE_MS/);
    expect(() => loadWorkerSettings({ SWEEP_INTERVAL_MS: '1.5' })).toThrow(/SWEEP_INTERVAL_MS/);
    expect(() => loadWorkerSettings({ LEASE_MS: '2000', CLAIM_INTERVAL_MS: '1500' })).toThrow(
      /half of LEASE_MS/,
    );
  });
});
