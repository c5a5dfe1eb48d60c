package parse

// The vocabulary of the code finder. A word labels a number as a one-time code
// (strong or weak), or as something else (anti): an order, a phone, a price. Words
// are matched whole and lower case; inflected forms are listed because stemming a
// dozen languages is not worth the surprises.

// label is what a word says about a number near it.
type label uint8

const (
	noLabel label = iota
	weak          // "code", "password": a code, unless the sentence is about a discount
	strong        // "verification", "OTP", "验证码": a code, whatever else is around
	anti          // "order", "invoice", "phone", "zip code": not a code
)

// wordLabels holds single words of languages written with spaces.
var wordLabels = map[string]label{}

func init() {
	for l, words := range map[label][]string{
		strong: {
			// English
			"verification", "verify", "verifying", "otp", "totp", "passcode", "passcodes",
			"2fa", "mfa", "authentication", "authenticate", "authenticator", "onetime",
			// German
			"bestätigungscode", "sicherheitscode", "verifizierungscode", "verifikationscode",
			"einmalcode", "einmalpasswort", "einmalkennwort", "anmeldecode", "zugangscode",
			"freigabecode", "authentifizierungscode", "prüfcode", "bestätigungs", "verifizierung",
			"verifizieren", "authentifizierung",
			// French
			"vérification", "vérifier", "authentification", "vérifiez",
			// Spanish, Portuguese, Italian
			"verificación", "verificar", "verifica", "autenticación", "verificação",
			"autenticação", "verificare", "autenticazione",
			// Dutch
			"verificatiecode", "bevestigingscode", "beveiligingscode", "inlogcode",
			"verificatie", "eenmalige", "toegangscode",
			// Polish
			"weryfikacyjny", "weryfikacyjnego", "weryfikacyjnym", "weryfikacji",
			"jednorazowy", "jednorazowego", "jednorazowym", "uwierzytelniający",
			// Russian, Ukrainian
			"подтверждения", "проверочный", "проверочного", "одноразовый", "одноразового",
			"верификации", "аутентификации", "підтвердження",
			// Turkish
			"doğrulama", "dogrulama", "kullanımlık",
		},
		weak: {
			"code", "codes", "password", "pin", "token", "kennwort", "passwort", "passe",
			"código", "codigo", "códigos", "clave", "contraseña", "senha", "codice", "codici",
			"wachtwoord", "kod", "kodu", "kodem", "kody", "kodunuz", "kodudur", "hasło",
			"код", "кода", "коду", "кодом", "пароль", "пароля", "şifre", "şifreniz", "sifre",
		},
		anti: {
			// orders, bills, shipping
			"order", "orders", "invoice", "invoices", "receipt", "tracking", "track",
			"shipment", "parcel", "reference", "ref", "ticket", "case", "booking",
			"reservation", "account", "acct", "customer", "member", "membership", "policy",
			"iban", "bic", "sku", "item", "serial", "model", "article", "amount", "total",
			"subtotal", "price", "qty", "quantity", "vat", "tax",
			"bestellung", "bestellnummer", "rechnung", "rechnungsnummer", "sendungsnummer",
			"sendung", "auftrag", "auftragsnummer", "kundennummer", "betrag", "summe",
			"commande", "facture", "colis", "suivi", "référence", "montant",
			"pedido", "factura", "envío", "seguimiento", "referencia", "importe",
			"encomenda", "fatura", "rastreamento", "ordine", "fattura", "spedizione",
			"riferimento", "importo", "bestelling", "factuur", "zending", "bestelnummer",
			"zamówienie", "zamówienia", "faktura", "faktury", "przesyłka", "przesyłki",
			"заказ", "заказа", "счет", "счёт", "накладная", "трек", "сумма",
			"sipariş", "siparişiniz", "kargo", "takip", "tutar",
			// phones, places, meetings
			"phone", "tel", "telephone", "fax", "mobile", "call", "dial", "hotline",
			"whatsapp", "zip", "postal", "postcode", "plz", "postleitzahl", "street",
			"suite", "apt", "room", "floor", "id", "meeting", "webinar",
			"telefon", "téléphone", "teléfono", "telefone", "telefono", "telefoon",
			"телефон", "nr", "nº", "unsubscribe",
			// masked numbers: "ending in 1234", "endet auf 1234"
			"ending", "ends", "endet", "endend", "terminant", "terminada", "terminado", "digits",
		},
	} {
		for _, w := range words {
			wordLabels[w] = l
		}
	}
}

// codeNouns are the words for "code" whose neighbours decide what kind of code it is.
var codeNouns = map[string]bool{
	"code": true, "codes": true, "código": true, "codigo": true, "códigos": true,
	"codice": true, "codici": true, "kod": true, "kodu": true, "kodem": true, "kody": true,
	"код": true, "кода": true, "коду": true, "кодом": true, "pin": true,
}

// codeBefore are words that, standing right before a code noun, make it a one-time
// code (strong) or some other code (anti): "security code", "zip code".
var codeBefore = map[string]label{
	"security": strong, "login": strong, "sign": strong, "signin": strong, "access": strong,
	"auth": strong, "confirmation": strong, "activation": strong, "reset": strong,
	"recovery": strong, "device": strong, "sms": strong, "email": strong, "launch": strong,
	"time": strong, "bestätigungs": strong, "sicherheits": strong, "anmelde": strong,
	"güvenlik": strong, "giriş": strong, "onay": strong, "doğrulama": strong,
	"zip": anti, "postal": anti, "post": anti, "promo": anti, "promotional": anti,
	"discount": anti, "coupon": anti, "voucher": anti, "gift": anti, "referral": anti,
	"area": anti, "country": anti, "dialing": anti, "tracking": anti, "track": anti,
	"product": anti, "article": anti, "item": anti, "swift": anti, "sort": anti,
	"bank": anti, "qr": anti, "bar": anti, "source": anti, "error": anti, "status": anti,
	"reason": anti, "color": anti, "colour": anti, "dress": anti, "html": anti, "hs": anti,
	"tariff": anti, "airport": anti, "iata": anti, "currency": anti, "rabatt": anti,
	"gutschein": anti, "aktions": anti, "posta": anti, "indirim": anti, "kupon": anti,
	"takip": anti, "почтовый": anti, "промо": anti, "reference": anti, "booking": anti,
	"order": anti, "invoice": anti, "customer": anti, "ticket": anti, "case": anti,
	"card": anti, "redemption": anti, "redeem": anti, "license": anti, "licence": anti,
	"product-key": anti, "serial": anti,
}

// codeAfter are words that, standing right after a code noun (or after its "de", "di"),
// say the same in languages that put them second: "code postal", "kod rabatowy".
var codeAfter = map[string]label{
	"postal": anti, "postale": anti, "promo": anti, "promocional": anti, "promozionale": anti,
	"sconto": anti, "descuento": anti, "desconto": anti, "réduction": anti, "remise": anti,
	"cupón": anti, "cupom": anti, "rabatowy": anti, "pocztowy": anti, "promocyjny": anti,
	"rabatu": anti, "скидки": anti, "купона": anti, "promotionnel": anti, "avantage": anti,
	"rastreio": anti, "rastreamento": anti, "seguimiento": anti, "suivi": anti,
	"confirmation": strong, "confirmación": strong, "confirmação": strong, "conferma": strong,
	"sécurité": strong, "seguridad": strong, "segurança": strong, "sicurezza": strong,
	"acceso": strong, "acesso": strong, "accesso": strong, "connexion": strong,
	"potwierdzający": strong, "potwierdzenia": strong, "dostępu": strong, "logowania": strong,
	"bezpieczeństwa": strong, "доступа": strong, "входа": strong, "безопасности": strong,
}

// codeLinks are the small words between a code noun and its modifier: "code de
// confirmation", "codice di sicurezza".
var codeLinks = map[string]bool{"de": true, "di": true, "da": true, "do": true, "du": true, "à": true, "a": true, "для": true}

// cjkLabels holds words of scripts written without spaces, found inside longer runs.
// A compound that contains a shorter keyword ("クーポンコード", coupon code) is listed
// so that the longer match wins.
var cjkLabels = []struct {
	word  string
	label label
}{
	// Japanese
	{"認証コード", strong}, {"確認コード", strong}, {"認証番号", strong}, {"確認番号", strong},
	{"ワンタイム", strong}, {"パスコード", strong}, {"セキュリティコード", strong},
	{"検証コード", strong}, {"認証", strong}, {"暗証番号", strong}, {"コード", weak},
	{"パスワード", weak},
	{"クーポンコード", anti}, {"プロモーションコード", anti}, {"割引コード", anti},
	{"郵便番号", anti}, {"注文番号", anti}, {"追跡番号", anti}, {"お問い合わせ番号", anti},
	{"電話", anti}, {"注文", anti}, {"請求", anti}, {"金額", anti}, {"合計", anti},
	// Chinese
	{"验证码", strong}, {"驗證碼", strong}, {"校验码", strong}, {"校驗碼", strong},
	{"确认码", strong}, {"確認碼", strong}, {"动态码", strong}, {"動態碼", strong},
	{"认证码", strong}, {"認證碼", strong}, {"安全码", strong}, {"安全碼", strong},
	{"验证", strong}, {"驗證", strong}, {"动态密码", strong}, {"密码", weak}, {"密碼", weak},
	{"口令", weak},
	{"优惠码", anti}, {"優惠碼", anti}, {"折扣码", anti}, {"兑换码", anti}, {"邀请码", anti},
	{"邮政编码", anti}, {"邮编", anti}, {"订单", anti}, {"訂單", anti}, {"快递单号", anti},
	{"运单", anti}, {"发票", anti}, {"金额", anti}, {"合计", anti}, {"电话", anti},
	// Korean
	{"인증번호", strong}, {"인증코드", strong}, {"인증", strong}, {"확인코드", strong},
	{"보안코드", strong}, {"코드", weak}, {"비밀번호", weak},
	{"쿠폰", anti}, {"할인", anti}, {"우편번호", anti}, {"주문", anti}, {"운송장", anti},
	{"전화", anti},
}

// fillers may stand between a keyword and the code it labels directly: "code is",
// "Ihr Code lautet", "votre code est".
var fillers = map[string]bool{
	"is": true, "your": true, "ist": true, "lautet": true, "ihr": true, "est": true,
	"votre": true, "es": true, "tu": true, "su": true, "é": true, "o": true, "seu": true,
	"è": true, "il": true, "tuo": true, "uw": true, "jest": true, "twój": true,
	"to": true, "ваш": true, "это": true, "the": true, "here": true, "below": true,
	"new": true, "de": true, "la": true, "le": true, "el": true,
}

// promoWords mark a sentence about a discount, where a "code" is a coupon.
var promoWords = map[string]bool{
	"promo": true, "promotional": true, "coupon": true, "discount": true, "voucher": true,
	"sale": true, "rabatt": true, "gutschein": true, "réduction": true, "remise": true,
	"promotion": true, "descuento": true, "cupón": true, "cupom": true, "desconto": true,
	"sconto": true, "korting": true, "kortingscode": true, "rabat": true, "zniżka": true,
	"скидка": true, "скидку": true, "промокод": true, "indirim": true, "kupon": true,
	"off": true,
}

// currencyWords and units after or before a number make it an amount.
var currencyWords = map[string]bool{
	"usd": true, "eur": true, "gbp": true, "chf": true, "jpy": true, "cny": true, "rmb": true,
	"rub": true, "pln": true, "try": true, "brl": true, "mxn": true, "inr": true, "aud": true,
	"cad": true, "sek": true, "nok": true, "dkk": true, "czk": true, "huf": true, "krw": true,
	"zł": true, "zl": true, "kr": true, "руб": true, "грн": true, "dollars": true,
	"dollar": true, "euro": true, "euros": true, "yen": true, "yuan": true, "won": true,
	"tl": true, "kg": true, "km": true, "mb": true, "gb": true, "kb": true, "px": true,
	"mm": true, "cm": true, "pcs": true, "stk": true, "reais": true, "rs": true,
}
