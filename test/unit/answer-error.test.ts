import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/http/problem';
import { OverloadedError } from '../../src/transfers/submit';

describe('errors that carry an answer', () => {
  it('capture no stack, and leave stack traces on for every other error', () => {
    const limit = Error.stackTraceLimit;
    for (const e of [new ApiError(503, 'overloaded'), new OverloadedError('full')]) {
      expect(e).toBeInstanceOf(Error);
      expect(e.stack?.split('\n')).toHaveLength(1);
    }
    expect(new ApiError(400, 'validation_failed', 'amount').message).toBe('amount');
    expect(new OverloadedError('full').name).toBe('OverloadedError');
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new Error('fault').stack?.split('\n').length).toBeGreaterThan(1);
  });
});
