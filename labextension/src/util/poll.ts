/**
 * Polling with JupyterLab's own poller, `Poll` from @lumino/polling: a poll backs off when its
 * factory rejects (up to 30 s between tries), stands by while the browser tab is hidden, and is
 * disposed with the model or widget that owns it.
 */
import { Poll } from '@lumino/polling';

/** The longest wait between two tries once requests fail. */
const MAX_INTERVAL = 30 * 1000;

/** A poll of `factory` every `interval` ms, started by its owner (`poll.start()`). */
export function createPoll(name: string, interval: number, factory: () => Promise<void>): Poll {
  return new Poll({
    name: `jupyter-offload:${name}`,
    auto: false,
    factory,
    frequency: { interval, backoff: true, max: MAX_INTERVAL },
    standby: 'when-hidden'
  });
}

/** Set a poll's interval (from its next tick). */
export function setPollInterval(poll: Poll, interval: number): void {
  poll.frequency = { ...poll.frequency, interval };
}

/**
 * Poll now, e.g. right after a user action, even while a request is under way (its answer may
 * be older than the action); resolves once this request has settled, and never rejects.
 */
export async function pollNow(poll: Poll): Promise<void> {
  await poll.schedule({ interval: Poll.IMMEDIATE, phase: 'refreshed' });
  await poll.tick.catch(() => undefined); // rejects only when the poll is disposed
}
