/**
 * The JupyterLab plugin `mlnb:models`: the "Models" panel in the left sidebar
 * and its commands, over mlnb's REST API (docs/rest-api.md).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { ModelsPanel } from './widget';

/** The ids of the panel's commands. */
export namespace CommandIDs {
  export const open = 'mlnb:open-models';
  export const refresh = 'mlnb:refresh-models';
}

// A cube; `jp-icon3` lets the theme pick its colour.
const CUBE_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M12 2 3 7v10l9 5 9-5V7zm0 2.3L18.7 8 12 11.7 5.3 8z' +
  'M5 9.7l6 3.3v6.6l-6-3.3zm8 9.9V13l6-3.3v6.6z"/></svg>';

/** The sidebar icon of the Models panel. */
export const modelsIcon = new LabIcon({ name: 'mlnb:models', svgstr: CUBE_SVG });

/** The Models sidebar plugin. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlnb:models',
  description: 'A left-sidebar panel to browse, promote and retire the models of the mlnb registry.',
  autoStart: true,
  optional: [INotebookTracker, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new ModelsPanel({
      tracker,
      activate: id => app.shell.activateById(id)
    });
    panel.id = 'mlnb-models';
    panel.title.icon = modelsIcon;
    panel.title.caption = 'Models';
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'mlnb-models');

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open the Models Panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh the Models Panel',
      execute: () => panel.refresh()
    });
    for (const command of [CommandIDs.open, CommandIDs.refresh]) {
      palette?.addItem({ command, category: 'mlnb' });
    }
  }
};

export default plugin;
