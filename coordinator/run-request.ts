/**
 * One admitted generation request, run on the coordinator's Generator: the step every client API
 * (gRPC Generate and Chat in inference-service.ts, the OpenAI-compatible HTTP API in http/)
 * shares. It refuses on a standby, charges each generated token to the admission ticket's key,
 * reports each event to the coordinator's metrics hook, and releases the ticket when the request
 * settles, however it ends.
 */
import { asBoraError } from '../common/errors';
import type { GenerationHandle, Generator } from '../common/generation/generator';
import type { GenerationEvent, GenerationRequest } from '../common/generation/request';
import type { TextFilter } from '../common/generation/text-filter';
import type { AdmissionTicket } from './admission';

export interface RunRequestDeps {
  readonly generator: () => Pick<Generator, 'start'>;
  /** Throws UNAVAILABLE when this coordinator may not serve (a standby). */
  readonly checkServing?: () => void;
  readonly onEvent?: (event: GenerationEvent) => void;
}

/**
 * Runs `request`, handing each event to `write`; settles when it ends (rejects with a BoraError).
 * `onCancel` receives the function that cancels it (which frees its caches on every stage).
 */
export function runAdmitted(
  deps: RunRequestDeps,
  request: GenerationRequest,
  ticket: AdmissionTicket | undefined,
  write: (event: GenerationEvent) => void,
  onCancel: (cancel: () => void) => void,
  /** The safety filter's check on the generated text (coordinator/safety/); none by default. */
  outputFilter?: TextFilter,
): Promise<void> {
  let handle: GenerationHandle;
  try {
    deps.checkServing?.();
    handle = deps.generator().start(
      request,
      (event) => {
        deps.onEvent?.(event);
        if (event.type === 'token') ticket?.recordTokens(1);
        write(event);
      },
      outputFilter,
    );
  } catch (err) {
    ticket?.release();
    return Promise.reject(asBoraError(err));
  }
  onCancel(() => handle.cancel());
  return handle.done.finally(() => ticket?.release());
}
