// Sends one mail with nodemailer's default options (no TLS settings), as an
// application under test would. Usage: node nodemailer.mjs HOST PORT FROM TO SUBJECT
import nodemailer from 'nodemailer';

const [host, port, from, to, subject] = process.argv.slice(2);
const transport = nodemailer.createTransport({ host, port: Number(port) });
const info = await transport.sendMail({ from, to, subject, text: 'Sent by nodemailer.' });
console.log(`sent ${info.messageId} ${info.response}`);
