// A stock Node.js Thrift server that rpcboot did not write: Apache Thrift's npm package with
// thrift-compiler's js:node code for the emitted rich IDL, framed and multiplexed, in the
// protocol named. rpcboot's Thrift channel (through the `rpcboot call` tool) calls it.
//
//   node thrift_server.js THRIFT_GEN_DIR compact|binary READY_FILE
// Writes "thrift=<port>" to READY_FILE once listening on 127.0.0.1; runs until killed.
'use strict';

const fs = require('fs');
const path = require('path');

const [thriftGen, protocolName, readyFile] = process.argv.slice(2);
const thrift = require('thrift');
const RichService = require(path.join(thriftGen, 'RichService'));
const common = require(path.join(thriftGen, 'common_types_types'));
const types = require(path.join(thriftGen, 'rich_service_types'));

const handler = {
  Mix: (a, b) => (a === b ? a : common.Color.kBlue),
  Lookup: (key) =>
    new types.LookupResponse({value: key === null || key === undefined ? null : `node ${key}`}),
  Histogram: (words) => {
    const counts = {};
    for (const w of words) counts[w] = (counts[w] || 0) + 1;
    return counts;
  },
  Notify: (id, message, color) => {  // all three: the generated processor counts them
    throw new types.RpcError({code: 9, message: `node refuses ${id}: ${message} (${color})`});
  },
};
const processor = new thrift.MultiplexedProcessor();
processor.registerProcessor('rich.RichService', new RichService.Processor(handler));
const protocol = protocolName === 'binary' ? thrift.TBinaryProtocol : thrift.TCompactProtocol;
const server = thrift.createMultiplexServer(processor, {transport: thrift.TFramedTransport, protocol});
server.on('error', (e) => console.error(`node thrift server: ${e}`));
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(readyFile, `thrift=${server.address().port}\n`);
});
