// Signing rate of the AWS SDK for JavaScript v3's getSignedUrl (canned policy), on node's
// main thread, as scripts/bench-sign runs it. Prints {"signs_per_sec": N, "us_per_sign": N}.
// Usage: node sign_rate.js KEY.pem SECONDS
const { getSignedUrl } = require('@aws-sdk/cloudfront-signer');
const fs = require('fs');

const [keyFile, seconds = '1'] = process.argv.slice(2);
const args = {
  url: 'https://d111111abcdef8.cloudfront.net/300x300/private/galleries/g1/cat.jpg',
  keyPairId: 'K2JCJMDEHXQW5F',
  // The SDK takes the PEM text and parses it on every call; that is how it is used.
  privateKey: fs.readFileSync(keyFile, 'utf8'),
  dateLessThan: new Date(1900000000 * 1000).toISOString(),
};
let bytes = 0;
for (let i = 0; i < 200; i++) bytes += getSignedUrl(args).length;
const budget = Number(seconds) * 1e9;
const start = process.hrtime.bigint();
let count = 0;
while (Number(process.hrtime.bigint() - start) < budget) {
  for (let i = 0; i < 50; i++) bytes += getSignedUrl(args).length;
  count += 50;
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
if (bytes === 0) throw new Error('nothing signed');
console.log(JSON.stringify({ signs_per_sec: Math.round(count / elapsed), us_per_sign: +((elapsed / count) * 1e6).toFixed(1) }));
