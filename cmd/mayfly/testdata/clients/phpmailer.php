<?php
// Sends one mail with PHPMailer (Debian's libphp-phpmailer). Usage:
//   php phpmailer.php HOST PORT FROM TO SUBJECT
// sends with PHPMailer's default SMTP settings, as an application under test would:
// SMTPAutoTLS upgrades when STARTTLS is offered and verifies the certificate;
//   php phpmailer.php HOST PORT FROM TO SUBJECT USER PASS IN_REPLY_TO
// sends a reply through submission, STARTTLS required and AUTH. A private CA is trusted
// with php -d openssl.cafile=/path/to/ca.pem.
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;

[, $host, $port, $from, $to, $subject] = $argv;
$mail = new PHPMailer(true);
$mail->isSMTP();
$mail->Host = $host;
$mail->Port = (int) $port;
if (count($argv) > 6) {
    [, , , , , , $user, $pass, $inReplyTo] = $argv;
    $mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
    $mail->SMTPAuth = true;
    $mail->Username = $user;
    $mail->Password = $pass;
    $mail->addCustomHeader('In-Reply-To', $inReplyTo);
}
$mail->setFrom($from);
$mail->addAddress($to);
$mail->Subject = $subject;
$mail->Body = 'Sent by PHPMailer ' . PHPMailer::VERSION . '.';
$mail->send();
echo 'sent ' . $mail->getLastMessageID() . "\n";
