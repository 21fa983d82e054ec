import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-offload:plugin',
  description: 'Run on GPU',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    app.commands.addCommand('offload:run-notebook', {
      label: 'Run on GPU',
      execute: () => console.log('offload: run')
    });
    console.log('jupyter-offload is activated');
  }
};

export default plugin;
