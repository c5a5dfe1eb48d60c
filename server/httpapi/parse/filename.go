package parse

import (
	"mime"
	"strconv"
	"strings"
)

// unnamed is the file name of a part whose sender gave none: calendar invitations are
// invite.ics, as mail clients offer them, and other parts "attachment-N" (N = index,
// so two unnamed parts of a message never share a name) with an extension from their
// type, so a saved file opens with the right program.
func unnamed(mediaType string, index int) string {
	switch mediaType {
	case "text/calendar", "application/ics":
		return "invite.ics"
	}
	return "attachment-" + strconv.Itoa(index) + extension(mediaType)
}

// extensions is looked up before mime.ExtensionsByType, whose answer depends on the
// machine's mime.types (image/jpeg gives ".jfif" first on Debian): the common types
// get the same name everywhere.
var extensions = map[string]string{
	"application/gzip":              ".gz",
	"application/json":              ".json",
	"application/msword":            ".doc",
	"application/octet-stream":      ".bin",
	"application/pdf":               ".pdf",
	"application/pgp-keys":          ".asc",
	"application/pgp-signature":     ".asc",
	"application/pkcs7-mime":        ".p7m",
	"application/pkcs7-signature":   ".p7s",
	"application/rtf":               ".rtf",
	"application/vnd.ms-excel":      ".xls",
	"application/vnd.ms-powerpoint": ".ppt",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         ".xlsx",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   ".docx",
	"application/x-pkcs7-signature":                                             ".p7s",
	"application/xml":                                                           ".xml",
	"application/zip":                                                           ".zip",
	"audio/mpeg":                                                                ".mp3",
	"audio/ogg":                                                                 ".ogg",
	"audio/wav":                                                                 ".wav",
	"image/bmp":                                                                 ".bmp",
	"image/gif":                                                                 ".gif",
	"image/jpeg":                                                                ".jpg",
	"image/png":                                                                 ".png",
	"image/svg+xml":                                                             ".svg",
	"image/tiff":                                                                ".tiff",
	"image/webp":                                                                ".webp",
	"message/delivery-status":                                                   ".txt",
	"message/global":                                                            ".eml",
	"message/rfc822":                                                            ".eml",
	"text/csv":                                                                  ".csv",
	"text/html":                                                                 ".html",
	"text/markdown":                                                             ".md",
	"text/plain":                                                                ".txt",
	"text/rfc822-headers":                                                       ".txt",
	"text/vcard":                                                                ".vcf",
	"text/x-vcard":                                                              ".vcf",
	"text/xml":                                                                  ".xml",
	"video/mp4":                                                                 ".mp4",
}

// extension returns the file extension of a media type, with its dot, or "" when
// neither the table nor the system knows one that is short plain ASCII.
func extension(mediaType string) string {
	if ext, ok := extensions[mediaType]; ok {
		return ext
	}
	exts, _ := mime.ExtensionsByType(mediaType) // sorted, so one machine always gives the same
	for _, ext := range exts {
		if len(ext) > 1 && len(ext) <= 8 && strings.Trim(ext[1:], "abcdefghijklmnopqrstuvwxyz0123456789") == "" {
			return ext
		}
	}
	return ""
}

// ContentDisposition is the header that offers a file for download under name (an
// AttachmentInfo.Filename or another base name): filename= in plain ASCII for the
// clients that read nothing else (curl -OJ, wget), and, when that lost something, the
// exact name in RFC 6266 / RFC 8187 filename*= for browsers.
func ContentDisposition(name string) string {
	fallback := asciiName(name)
	v := mime.FormatMediaType("attachment", map[string]string{"filename": fallback})
	if fallback != name {
		v += "; filename*=UTF-8''" + percentEncode(name)
	}
	return v
}

// asciiName is name with each non-ASCII character replaced by '_' and what a quoted
// string or a file system could take otherwise dropped: quotes, backslashes, control
// characters, path separators. '%' becomes '_' too, as some browsers decode %XX in
// filename=. A name left empty, or a name "." or "..", becomes "attachment".
func asciiName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 0x80 || r == '%':
			b.WriteByte('_')
		case r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '/':
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimSpace(b.String())
	if s == "" || s == "." || s == ".." {
		return "attachment"
	}
	return s
}

// percentEncode writes s as an RFC 8187 value: attr-char as is, every other byte of
// its UTF-8 as %XX.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
