#!/usr/bin/env node
// Signals that arrive while the CLI's modules load would otherwise kill the process with the
// default action; record them and let the CLI honour them (the worker then stops cleanly).
const received = [];
const record = (signal) => received.push(signal);
process.on('SIGTERM', record);
process.on('SIGINT', record);
const stopListening = () => {
  process.off('SIGTERM', record);
  process.off('SIGINT', record);
};
const { runCli } = await import('../dist/cli.js');
runCli(process.argv.slice(2), { received, stopListening });
