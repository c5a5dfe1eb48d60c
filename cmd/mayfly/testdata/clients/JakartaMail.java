// Reads and sends with Jakarta Mail (Debian's libjakarta-mail-java), run as a single
// source file: java -cp /usr/share/java/jakarta-mail.jar:/usr/share/java/jakarta-activation.jar
// JakartaMail.java MODE ... A private CA is trusted the Java way, with
// -Djavax.net.ssl.trustStore=ca.p12 (keytool -importcert).
//
//   send HOST PORT FROM TO SUBJECT [starttls]
//                                       Jakarta Mail's default SMTP settings, as an
//                                       application under test would send; starttls
//                                       adds mail.smtp.starttls.enable=true, as many
//                                       applications set: STARTTLS taken when offered,
//                                       the certificate verified
//   reply HOST PORT USER PASS TO SUBJECT IN_REPLY_TO
//                                       through submission: STARTTLS required, AUTH, the
//                                       host name checked
//   read HOST PORT USER PASS            IMAP with STARTTLS required, the host name
//                                       checked; reads every message in INBOX and prints
//                                       its Subject, then "fetched N"
import jakarta.mail.FetchProfile;
import jakarta.mail.Folder;
import jakarta.mail.Message;
import jakarta.mail.Session;
import jakarta.mail.Store;
import jakarta.mail.Transport;
import jakarta.mail.internet.InternetAddress;
import jakarta.mail.internet.MimeMessage;
import java.util.Properties;

public class JakartaMail {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        switch (args[0]) {
            case "send" -> {
                props.put("mail.smtp.host", args[1]);
                props.put("mail.smtp.port", args[2]);
                if (args.length > 6 && args[6].equals("starttls")) {
                    props.put("mail.smtp.starttls.enable", "true");
                }
                send(Session.getInstance(props), args[3], args[4], args[5], null, null, null);
            }
            case "reply" -> {
                props.put("mail.smtp.host", args[1]);
                props.put("mail.smtp.port", args[2]);
                props.put("mail.smtp.auth", "true");
                props.put("mail.smtp.starttls.enable", "true");
                props.put("mail.smtp.starttls.required", "true");
                props.put("mail.smtp.ssl.checkserveridentity", "true");
                send(Session.getInstance(props), args[3], args[5], args[6], args[7], args[3], args[4]);
            }
            case "read" -> {
                props.put("mail.imap.starttls.enable", "true");
                props.put("mail.imap.starttls.required", "true");
                props.put("mail.imap.ssl.checkserveridentity", "true");
                Store store = Session.getInstance(props).getStore("imap");
                store.connect(args[1], Integer.parseInt(args[2]), args[3], args[4]);
                Folder inbox = store.getFolder("INBOX");
                inbox.open(Folder.READ_ONLY);
                Message[] messages = inbox.getMessages();
                FetchProfile fp = new FetchProfile();
                fp.add(FetchProfile.Item.ENVELOPE);
                inbox.fetch(messages, fp);
                for (Message m : messages) {
                    // The body too, one FETCH per message, as an application reading
                    // each mail does.
                    if (!(m.getContent() instanceof String)) {
                        throw new IllegalStateException("no text body in " + m.getSubject());
                    }
                    System.out.println("Subject: " + m.getSubject());
                }
                System.out.println("fetched " + messages.length);
                inbox.close(false);
                store.close();
            }
            default -> throw new IllegalArgumentException("mode " + args[0]);
        }
    }

    static void send(Session session, String from, String to, String subject, String inReplyTo,
            String user, String pass) throws Exception {
        MimeMessage msg = new MimeMessage(session);
        msg.setFrom(new InternetAddress(from));
        msg.setRecipient(Message.RecipientType.TO, new InternetAddress(to));
        msg.setSubject(subject);
        msg.setText("Sent by Jakarta Mail " + Session.class.getPackage().getImplementationVersion() + ".");
        if (inReplyTo != null) {
            msg.setHeader("In-Reply-To", inReplyTo);
        }
        if (user != null) {
            Transport.send(msg, user, pass);
        } else {
            Transport.send(msg);
        }
        System.out.println("sent " + msg.getMessageID());
    }
}
