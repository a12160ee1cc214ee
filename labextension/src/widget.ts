/**
 * The Models sidebar: a Lumino widget that ties the state (model.ts) to the
 * view (view.ts) and does what needs JupyterLab: confirmation dialogs, the
 * clipboard and inserting a cell in the current notebook.
 *
 * It polls the registry's change token only while it is shown (see
 * `onAfterShow` / `onAfterHide`) and the browser tab is visible.
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { requestAPI } from './api';
import { ModelsState, Request } from './model';
import { ActionName, ActionTarget, ModelsView } from './view';

/** Options of `ModelsPanel`. */
export interface ModelsPanelOptions {
  /** The notebooks, to insert `%mlnb show` into the current one. */
  tracker: INotebookTracker | null;
  /** Brings a widget to the front (the shell's `activateById`). */
  activate: (id: string) => void;
  /** The API call; `requestAPI` unless a test gives another. */
  request?: Request;
}

/** The text of the error line when there is no notebook to insert into. */
export const NO_NOTEBOOK = 'Open a notebook to insert %mlnb show';

/** The left-sidebar "Models" panel. */
export class ModelsPanel extends Widget {
  readonly state: ModelsState;
  private readonly view: ModelsView;
  private readonly options: ModelsPanelOptions;
  private readonly onVisibility = (): void => {
    if (document.visibilityState === 'visible') {
      this.state.poller.wake();
    }
  };

  constructor(options: ModelsPanelOptions) {
    super();
    this.options = options;
    this.addClass('mlnb-models-widget');
    this.state = new ModelsState(options.request ?? requestAPI, {
      isPageVisible: () => document.visibilityState === 'visible'
    });
    const state = this.state;
    this.view = new ModelsView(document, {
      filter: text => state.setFilter(text),
      refresh: () => void state.refresh(),
      toggleModel: name => void state.toggleModel(name),
      openVersion: (name, version) => void state.openVersion(name, version),
      closeDetail: () => state.closeDetail(),
      action: (action, target) => void this.act(action, target)
    });
    this.node.appendChild(this.view.node);
    state.onChange(() => this.view.render(state));
    this.view.render(state);
  }

  /** Reload everything from the server. */
  refresh(): Promise<void> {
    return this.state.refresh();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    document.addEventListener('visibilitychange', this.onVisibility);
    // A panel restored open at start-up is attached visible and never "shown".
    if (this.isVisible) {
      this.state.startPolling();
    }
  }

  protected onBeforeDetach(msg: Message): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.state.stopPolling();
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.state.startPolling();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.state.stopPolling();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.state.stopPolling();
    document.removeEventListener('visibilitychange', this.onVisibility);
    super.dispose();
  }

  private async act(action: ActionName, target: ActionTarget): Promise<void> {
    const { name, version, ref } = target;
    const state = this.state;
    switch (action) {
      case 'copy-load':
      case 'insert-show': {
        const row = state.findVersion(ref);
        if (row === null) {
          return;
        }
        if (action === 'copy-load') {
          Clipboard.copyToSystem(row.snippets.load);
          state.showNotice(`Copied: ${row.snippets.load}`);
        } else {
          this.insert(row.snippets.show);
        }
        return;
      }
      case 'promote':
      case 'promote-staging': {
        const alias = action === 'promote' ? 'production' : 'staging';
        const reason = await confirm(`Promote ${ref} to ${alias}?`, 'Promote', false);
        if (reason !== null && version !== null) {
          await state.promote(name, version, alias, reason);
        }
        return;
      }
      case 'retire': {
        const reason = await confirm(`Retire ${ref}?`, 'Retire', true);
        if (reason !== null && version !== null) {
          await state.retire(name, version, reason);
        }
        return;
      }
      case 'rollback': {
        const reason = await confirm(`Roll back production of ${name}?`, 'Roll back', true);
        if (reason !== null) {
          await state.rollback(name, 'production', reason);
        }
        return;
      }
    }
  }

  private insert(source: string): void {
    const current = this.options.tracker?.currentWidget ?? null;
    if (current === null) {
      this.state.showError(NO_NOTEBOOK);
      return;
    }
    const notebook = current.content;
    NotebookActions.insertBelow(notebook);
    NotebookActions.changeCellType(notebook, 'code');
    notebook.activeCell?.model.sharedModel.setSource(source);
    this.options.activate(current.id);
    this.state.showNotice(`Inserted: ${source}`);
  }
}

/** The dialog body: a line of text and an optional reason. */
class ReasonBody extends Widget implements Dialog.IBodyWidget<string> {
  private readonly input: HTMLInputElement;

  constructor() {
    super();
    this.addClass('mlnb-reason-body');
    this.input = document.createElement('input');
    this.input.className = 'jp-mod-styled mlnb-reason';
    this.input.placeholder = 'Reason (optional, kept in the audit log)';
    this.input.setAttribute('aria-label', 'Reason');
    this.node.appendChild(this.input);
  }

  getValue(): string {
    return this.input.value;
  }
}

/** Ask to confirm; the reason typed, or `null` if cancelled. */
async function confirm(title: string, label: string, warn: boolean): Promise<string | null> {
  const accept = warn ? Dialog.warnButton({ label }) : Dialog.okButton({ label });
  const result = await showDialog({
    title,
    body: new ReasonBody(),
    buttons: [Dialog.cancelButton(), accept],
    focusNodeSelector: 'input'
  });
  return result.button.accept ? (result.value ?? '') : null;
}
