{{/* The name of every object: the release's, with "mayfly" unless it says so already. */}}
{{- define "mayfly.fullname" -}}
{{- if contains "mayfly" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-mayfly" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What the Deployment, the Services and the PodDisruptionBudget select the pods by. */}}
{{- define "mayfly.selectorLabels" -}}
app.kubernetes.io/name: mayfly
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mayfly.labels" -}}
{{ include "mayfly.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mayfly.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "mayfly.fullname" .)) -}}
{{- end -}}

{{/*
Replicas share mail only through Redis: without it each would keep its own in memory,
and a client would find its inbox on one pod and not on the next. Refuse to render.
*/}}
{{- define "mayfly.checkValues" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.secret.redisURL) (not .Values.secret.existingSecret) -}}
{{- fail (printf "replicaCount %d needs a shared store: set secret.redisURL (or secret.existingSecret, a Secret holding MAYFLY_REDIS_URL); without Redis each replica keeps its own mail in memory" (int .Values.replicaCount)) -}}
{{- end -}}
{{- range $k, $v := .Values.config -}}
{{- if not (hasPrefix "MAYFLY_" $k) -}}
{{- fail (printf "config.%s: the ConfigMap holds MAYFLY_* settings only (docs/configuration.md lists them)" $k) -}}
{{- end -}}
{{- if has $k (list "MAYFLY_SMTP_ADDR" "MAYFLY_SUBMISSION_ADDR" "MAYFLY_SUBMISSIONS_ADDR" "MAYFLY_IMAP_ADDR" "MAYFLY_IMAPS_ADDR" "MAYFLY_POP3_ADDR" "MAYFLY_POP3S_ADDR" "MAYFLY_HTTP_ADDR" "MAYFLY_METRICS_ADDR" "MAYFLY_REDIS_URL" "MAYFLY_SECRET" "MAYFLY_API_KEY") -}}
{{- fail (printf "config.%s is the chart's to set: the listeners follow the container ports, and the Redis URL and keys go in secret.*" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
