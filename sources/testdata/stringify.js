// node sources/testdata/stringify.js > sources/testdata/stringify.json
// Generates stringify.json: JSON texts and what JavaScript's
// JSON.stringify(JSON.parse(text)) makes of them.
const inputs = [
  '{"PageURL":"https:\\/\\/acme.example\\/contact"}',
  '{"name":"Ren\\u00e9e","emoji":"\\ud83d\\ude00","sep":"\\u2028\\u2029","del":"\\u007f"}',
  '{"ctl":"\\u0001\\u001f\\b\\f\\n\\r\\t","q":"\\"\\\\"}',
  '{ "a" : [ 1 , 2.50 , -0 , 1E3 , 1e21 , 1e-7 , 0.000001 , 123456789012345678901234 , 5e-324 , 1.7976931348623157e308 ] }',
  '[0.1, 0.2, 100, 1e20, 1.5e20, 12e-1, -1.25e-10, 9007199254740993, 0.000123]',
  '{"nested":{"deep":[{"x":null,"y":true,"z":false}]},"empty":{},"list":[]}',
  '"just a string with \\/ slash"',
  '  42  ',
  '{"b":2,"a":1}',
  '{"html":"<b>&amp;</b>","uni":"\\u00FC\\u4e2d"}',
];
const out = inputs.map(s => ({in: s, want: JSON.stringify(JSON.parse(s))}));
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
