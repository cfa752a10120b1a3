// Errors that carry an answer to a client (a refusal, a validation error), not a fault.

/**
 * An Error without a stack trace. Capturing one walks every frame and every awaiting async
 * function above the throw: a refused request's two errors' stacks were about 8 % of the web's
 * profile when every request of a flash crowd was refused at the backlog cap. What such an error
 * means is its message and fields, and nothing logs its stack; a fault keeps using Error.
 */
export class AnswerError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}
