package report

// Categories of checks.
const (
	Authentication = "authentication"
	Host           = "host"
	Domain         = "domain"
	Spam           = "spam"
	Content        = "content"
)

// weight is what one check costs when it does not pass: its points come off the
// score of 10. docs/report.md shows this table; TestWeightsDocumented keeps the two
// the same.
type weight struct {
	category string
	points   float64
}

var weights = map[string]weight{
	"spf":                   {Authentication, 1.5},
	"dkim":                  {Authentication, 1.5},
	"dkim-key":              {Authentication, 0.5},
	"dmarc":                 {Authentication, 1},
	"rdns":                  {Host, 0.5},
	"fcrdns":                {Host, 0.5},
	"helo":                  {Host, 0.3},
	"mx":                    {Domain, 0.5},
	"spf-record":            {Domain, 0.5},
	"dmarc-policy":          {Domain, 0.5},
	"mta-sts":               {Domain, 0.2},
	"tls-rpt":               {Domain, 0.1},
	"bimi":                  {Domain, 0.1},
	"rspamd":                {Spam, 2},
	"text-part":             {Content, 0.3},
	"html-size":             {Content, 0.3},
	"image-ratio":           {Content, 0.3},
	"image-alt":             {Content, 0.1},
	"link-ip":               {Content, 0.5},
	"link-shortener":        {Content, 0.5},
	"list-unsubscribe":      {Content, 0.3},
	"list-unsubscribe-post": {Content, 0.2},
	"message-id":            {Content, 0.3},
	"date":                  {Content, 0.3},
	"line-length":           {Content, 0.3},
}
