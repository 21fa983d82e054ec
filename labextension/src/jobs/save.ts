/**
 * Saving a notebook before it is submitted (Run on GPU, Sweep), without racing JupyterLab's
 * autosave. Two saves of one document in flight at once make the second one compare the file's
 * hash with a stale one and raise "File Changed... Overwrite/Revert". So every save of a
 * followed notebook waits for the one before it, and a save before submit waits for any save
 * under way (an autosave) and is skipped when the model is not dirty.
 */
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookTracker } from '@jupyterlab/notebook';

type Context = DocumentRegistry.Context;

/** The last save asked for, per followed document (settled or not). */
const lastSave = new WeakMap<Context, Promise<void>>();

/**
 * Queue every save of this document behind the one before it (autosave, Ctrl+S and ours alike):
 * a save starts only once the previous one has settled and the context knows the file's new
 * hash, so none compares against a stale one.
 */
function follow(context: Context): void {
  if (lastSave.has(context)) {
    return;
  }
  const save = context.save.bind(context);
  lastSave.set(context, Promise.resolve());
  context.save = () => {
    const previous = lastSave.get(context) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => save());
    lastSave.set(context, next);
    return next;
  };
}

/** Follow the saves of every notebook the tracker has and will have (call once, at start). */
export function followSaves(tracker: INotebookTracker): void {
  tracker.forEach(panel => follow(panel.context));
  tracker.widgetAdded.connect((_, panel) => follow(panel.context));
}

/** Resolves once no save of this document is in flight (whether it succeeded or not). */
export async function saveSettled(context: Context): Promise<void> {
  for (;;) {
    const pending = lastSave.get(context);
    await pending?.catch(() => undefined);
    if (lastSave.get(context) === pending) {
      return;
    }
  }
}

/**
 * Save the document if it has unsaved changes, after any save in flight (an autosave): never
 * two saves of it at once. Resolves once the file holds what the user sees.
 */
export async function saveBeforeSubmit(context: Context): Promise<void> {
  follow(context);
  await saveSettled(context);
  if (context.model.dirty && !context.model.readOnly) {
    await context.save();
  }
}
