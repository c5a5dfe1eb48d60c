package parse

import (
	"regexp"
	"slices"
	"testing"
	"unicode/utf8"
)

func TestCodes(t *testing.T) {
	tests := []struct {
		name                string
		subject, text, html string
		want                []string
	}{
		// Sign-up and sign-in mails of the usual services.
		{name: "github device verification",
			subject: "[GitHub] Please verify your device",
			text: "Hey octocat!\n\nA sign in attempt requires further verification because we did not recognize your device.\n" +
				"To complete the sign in, enter the verification code on the unrecognized device.\n\n" +
				"Device: Chrome on Linux\nVerification code: 482917\n\n" +
				"If you did not attempt to sign in to your account, your password may be compromised. Visit\n" +
				"https://github.com/settings/security to create a new, strong password for your GitHub account.\n\nThanks,\nThe GitHub Team\n",
			want: []string{"482917"}},
		{name: "google subject with G- prefix",
			subject: "G-482917 is your Google verification code",
			text: "Verify your email address\n\nTo finish setting up your Google Account, we just need to make sure this email address is yours.\n\n" +
				"To verify your email address use this security code: 482917\n\n" +
				"If you didn't request this code, you can safely ignore this email.\n",
			want: []string{"482917"}},
		{name: "slack confirmation code hyphenated alphanumeric",
			subject: "Slack confirmation code: Q7X-4MB",
			html: `<h1>Confirm your email address</h1><p>Your confirmation code is below — enter it in your open browser window and we'll help you get signed in.</p>` +
				`<div style="background:#F4F4F4;font-size:30px;padding:24px">Q7X-4MB</div><p>If you didn't request this email, there's nothing to worry about.</p>`,
			want: []string{"Q7X-4MB"}},
		{name: "german bank transfer confirmation with amount",
			subject: "Ihre TAN für die Überweisung",
			text: "Sehr geehrte Kundin, sehr geehrter Kunde,\n\nIhr Bestätigungscode für die Überweisung über 1.299,00 EUR an Muster GmbH lautet: 73920154\n\n" +
				"Der Code ist 5 Minuten gültig. Geben Sie ihn niemals an Dritte weiter.\n\nIhre Musterbank\nBLZ 100 200 30",
			want: []string{"73920154"}},
		{name: "bank otp sms style with amount and merchant",
			text: "Your OTP for the payment of EUR 1,299.00 at EXAMPLE SHOP is 48291734. Do not share it with anyone. Card ending 4242.",
			want: []string{"48291734"}},
		{name: "steam guard code alone on its line",
			subject: "Your Steam account: Access from new web or mobile device",
			text: "Dear gabelogannewell,\n\nHere is the Steam Guard code you need to login to account gabelogannewell:\n\n4G8TR\n\n" +
				"This email was generated because of a login attempt from a web or mobile device located at Seattle, WA, United States (203.0.113.7).\n",
			want: []string{"4G8TR"}},
		{name: "microsoft security code",
			subject: "Microsoft account security code",
			text: "Microsoft account\nSecurity code\n\nPlease use the following security code for the Microsoft account ju***@example.com.\n\n" +
				"Security code: 7394\n\nIf you don't recognize the Microsoft account ju***@example.com, you can click here to remove your email address.\n",
			want: []string{"7394"}},
		{name: "amazon code after colon line and blank line",
			text: "To verify your identity, please use the following code:\n\n739104\n\nAmazon takes your account security very seriously. " +
				"Amazon will never email you and ask you to disclose or verify your Amazon password, credit card, or banking account number.\n",
			want: []string{"739104"}},
		{name: "paypal security code",
			text: "PayPal: Your security code is: 592817. Your code expires in 10 minutes. Please don't reply.",
			want: []string{"592817"}},
		{name: "code before keyword in subject",
			subject: "482917 is your Instagram code", want: []string{"482917"}},
		{name: "apple id code",
			text: "Your Apple ID Code is: 503812. Don't share it with anyone.", want: []string{"503812"}},
		{name: "code for an order",
			text: "Your code for order 10234981 is 482917.", want: []string{"482917"}},
		{name: "one-time password alphanumeric",
			text: "Your one-time password is X7KQ2M. It is valid for 5 minutes.", want: []string{"X7KQ2M"}},
		{name: "recovery code hyphenated",
			text: "Your recovery code: AB12-CD34", want: []string{"AB12-CD34"}},
		{name: "spaced digits",
			text: "Your login code: 123 456", want: []string{"123456"}},
		{name: "hyphenated digits",
			text: "Your Example code is 482-917.", want: []string{"482917"}},
		{name: "pin that looks like a year",
			text: "Your PIN: 2024", want: []string{"2024"}},
		// Languages.
		{name: "german sicherheitscode", text: "Ihr Sicherheitscode lautet 553 019", want: []string{"553019"}},
		{name: "french narrow no-break space",
			subject: "Votre code de vérification",
			text:    "Bonjour,\n\nVotre code de vérification est : 582\u202f113\n\nCe code expire dans 10 minutes.\n",
			want:    []string{"582113"}},
		{name: "spanish", text: "Tu código de verificación es 904512. Caduca en 15 minutos.", want: []string{"904512"}},
		{name: "portuguese", text: "Seu código de confirmação: 318 764", want: []string{"318764"}},
		{name: "italian", text: "Il tuo codice di verifica è 771203.", want: []string{"771203"}},
		{name: "dutch", text: "Je verificatiecode is 246810. Deel deze code met niemand.", want: []string{"246810"}},
		{name: "polish", subject: "Kod weryfikacyjny", text: "Twój kod weryfikacyjny to: 552901. Nie udostępniaj go nikomu.", want: []string{"552901"}},
		{name: "russian", text: "Код подтверждения: 609312. Никому не сообщайте этот код.", want: []string{"609312"}},
		{name: "japanese full-width digits",
			subject: "【Example】認証コードのお知らせ",
			text:    "認証コード：４８２９１７\nこのコードの有効期限は10分です。",
			want:    []string{"482917"}},
		{name: "chinese simplified", text: "您的验证码是 835210，5分钟内有效，请勿泄露给他人。", want: []string{"835210"}},
		{name: "chinese traditional", text: "您的驗證碼為：482917", want: []string{"482917"}},
		{name: "korean", text: "[Web발신] 인증번호 [482917]를 입력해주세요.", want: []string{"482917"}},
		{name: "turkish", text: "Doğrulama kodunuz: 123987", want: []string{"123987"}},
		// HTML layouts.
		{name: "bold in a sentence", html: `<p>Your verification code is <strong>385021</strong>.</p>`, want: []string{"385021"}},
		{name: "table cell under a label",
			html: `<table><tr><td>Verification code</td></tr><tr><td style="font-size:32px;letter-spacing:8px"><b>719204</b></td></tr></table>`,
			want: []string{"719204"}},
		{name: "paragraph after a colon",
			html: `<p>Enter this code to finish signing up:</p><p style="font-size:28px">604 118</p><p>This code expires in 10 minutes.</p>`,
			want: []string{"604118"}},
		{name: "one digit a box",
			html: `<table><tr><td>Your code</td></tr><tr><td>4</td><td>8</td><td>2</td><td>9</td><td>1</td><td>7</td></tr></table>`,
			want: []string{"482917"}},
		{name: "same code in text and html once",
			subject: "Your code", text: "Your code is 482 917", html: "<p>Your code is <b>482917</b></p>",
			want: []string{"482917"}},

		// Mails without a code.
		{name: "receipt with prices and order number",
			subject: "Your receipt from Example Store #10234981",
			text: "Thanks for your order!\n\nOrder #10234981\nPlaced on 12/03/2026 at 10:30\n\n" +
				"1 x Wireless Mouse       $19.99\n2 x USB-C Cable          $25.98\nSubtotal                 $45.97\n" +
				"Tax                      $3.68\nTotal                    $49.65\n\nPaid with Visa ending in 4242\n\nQuestions? Call us at +1 415 555 0134.\n"},
		{name: "receipt with promo code and order number",
			text: "Order number: 10234981\nTotal: € 1.234,56\n\nUse promo code SAVE20 on your next order to get 20% off.\nYour code 1299 USD voucher is attached."},
		{name: "shipping with tracking number",
			subject: "Your package is on its way",
			text: "Your package is on its way!\nTracking number: 1Z999AA10123456784\nCarrier: UPS\nEstimated delivery: Friday, 12/05/2026\n" +
				"Order 10234981 · 2 items\nTracking code: TR12345678\nTrack your package: https://www.ups.com/track?tracknum=1Z999AA10123456784\n"},
		{name: "german shipping",
			text: "Ihre Sendung ist unterwegs. Sendungsnummer: 00340434161094042557. Bestellnummer: 302-4412873-1123. " +
				"Zustellung am 04.12.2026 zwischen 10:00 und 14:00 Uhr an Musterstraße 12, 10115 Berlin."},
		{name: "meeting invite with phone numbers",
			subject: "Invitation: Weekly sync @ Thu Dec 3, 2026 10:30 – 11:00 (CET)",
			text: "Join with Google Meet: https://meet.google.com/abc-defg-hij\nJoin by phone: +1 415-555-0134 PIN: 123 456 789#\n" +
				"Meeting ID: 815 2345 6789\nDial-in: (030) 1234567\nRoom 4021, 2nd floor\n"},
		{name: "newsletter with years and zip codes",
			subject: "The best of 2025",
			text: "New in 2026: our code review guide.\n\n© 2026 Example Inc. · 123 Main Street, Suite 400, San Francisco, CA 94105\n" +
				"Our ZIP code 94105 moved.\nYou received this email because you signed up at example.com. Unsubscribe: https://example.com/u?id=AB12CD34EF\n"},
		{name: "password reset with only a link",
			subject: "Reset your password",
			text: "We received a request to reset your password. Click the link below to choose a new one:\n\n" +
				"https://example.com/reset?token=8F3A2B1C9D&uid=482917\n\nThis link expires in 24 hours. If you didn't request a password reset, ignore this email.\n"},
		{name: "html full of css colours",
			html: `<html><head><style>body{color:#333333;background:#FFFFFF} .btn{background-color:#FF0000;border:1px solid #C0C0C0}</style></head>` +
				`<body bgcolor="#F4F4F4"><table><tr><td style="color:#1A2B3C">Welcome to Example! Your account is ready.</td></tr>` +
				`<tr><td><a href="https://example.com/start" style="color:#00FF00">Get started</a></td></tr>` +
				`<tr><td style="color:#999999">Color code: #FF0000 is our brand red. Use code #A1B2C3 in your CSS.</td></tr></table></body></html>`},
		{name: "bank statement",
			text: "Your statement for account 12345678 is ready. Balance: € 1.234,56. Sort code 40-47-84. Reference code: 8F3A2B1C"},
		{name: "flight booking reference",
			text: "Booking reference: X7KQ2M\nFlight LH 2026 from FRA to JFK on 12/03/2026 at 10:30. Check-in code: gate closes 45 minutes before."},
		{name: "verification link only",
			text: "Please verify your email address by clicking the link below.\nhttps://example.com/verify?code=482917&user=AB12CD\n"},
		{name: "phone number near a keyword",
			text: "We sent a verification code to +1 415 555 0134. Wir haben einen Bestätigungscode an (030) 1234567 gesendet."},
		{name: "dates and times near a keyword",
			text: "Your code expires on 12/03/2026 at 10:30. Code valid until 2026."},
		{name: "hex message id and e-mail address",
			text: "Message-ID: <8F3A2B1C9D@mail.example.com>\nYour code was sent to AB12CD@example.com."},
		{name: "amounts around the word code",
			text: "Discount code applied: you saved 1500 EUR. Code 4500 € credited."},
		{name: "masked phone and card numbers",
			text: "We sent a verification code to the phone number ending in 1234. Card ****4242 and •••• 5555 were charged. Code sent to ***-***-0134."},
		{name: "gift card code",
			text: "Your gift card code: GC7X-4MB2. Redeem it at checkout."},
		{name: "bold in text converted from html",
			text: "Your verification code:\n\n**482917**", want: []string{"482917"}},
		{name: "in order to",
			text: "Enter 482917 in order to verify your address.", want: []string{"482917"}},
		{name: "japanese code after an order word",
			text: "ご注文の確認コード：482917\n注文番号：12345678", want: []string{"482917"}},
		{name: "chinese code before its keyword",
			text: "482917是您的验证码，请在10分钟内输入。", want: []string{"482917"}},
		{name: "chinese order",
			text: "您的订单 20261123 已发货，优惠码 SAVE2026 可在下次使用。"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Codes(tt.subject, tt.text, tt.html)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Codes(%q, %q, %q) = %q, want %q", tt.subject, tt.text, tt.html, got, tt.want)
			}
		})
	}
}

// codeShape is what every code looks like, whatever mail it came from.
var codeShape = regexp.MustCompile(`^([0-9]{4,10}|[A-Z0-9]{4,10}|[A-Z0-9]{2,8}-[A-Z0-9]{2,8})$`)

// FuzzCodes feeds arbitrary text to the code finder: it must not panic or hang, and
// what it returns must look like a code.
func FuzzCodes(f *testing.F) {
	f.Add("Your code", "Your verification code is 482 917.", "<p>Code: <b>X7KQ2M</b></p>")
	f.Add("认证", "您的验证码是：４８２９１７，5分钟内有效。", "")
	f.Add("", "Order #10234981 +1 415 555 0134 12/03/2026 10:30 $19.99 AB12-CD34-EF56", "")
	f.Add("", "code:\n\n4 8 2 9 1 7\n\nthis code", "<td>1</td><td>2</td>")
	f.Add("", "<https://x.test/a\n b> ju***@x.test 2026", "")
	f.Fuzz(func(t *testing.T, subject, text, html string) {
		got := Codes(subject, text, html)
		for _, c := range got {
			if !codeShape.MatchString(c) || !utf8.ValidString(c) {
				t.Errorf("Codes(%q, %q, %q) = %q: %q is not shaped like a code", subject, text, html, got, c)
			}
		}
		if len(got) > 1 && slices.Contains(got[1:], got[0]) {
			t.Errorf("Codes(%q, %q, %q) = %q, want no duplicates", subject, text, html, got)
		}
	})
}
