// StrykerJS 9's mocha runner (the last that runs on Node 20) requires mocha's CLI helpers by
// their pre-12 paths (lib/cli/run-helpers, lib/cli/options, ...); mocha 12 ships them as .cjs.
// This preload lets such a require find the .cjs file. Used only by `npm run mutate`.
const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  try {
    return resolve.call(this, request, ...rest);
  } catch (e) {
    if (/[\\/]mocha[\\/]lib[\\/]cli[\\/][\w-]+$/.test(request)) return resolve.call(this, `${request}.cjs`, ...rest);
    throw e;
  }
};
