{{- define "portcullis.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portcullis.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portcullis.secretName" -}}
{{- default (include "portcullis.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Several replicas share nothing unless sessions live in Redis. */}}
{{- define "portcullis.validate" -}}
{{- $replicas := .Values.replicaCount | int -}}
{{- if .Values.autoscaling.enabled -}}{{- $replicas = .Values.autoscaling.maxReplicas | int -}}{{- end -}}
{{- $store := dig "session" "store" "memory" .Values.config -}}
{{- if and (gt $replicas 1) (ne $store "redis") -}}
{{- fail "more than one replica needs config.session.store = \"redis\" (with secrets.redisUrl and secrets.sessionEncryptionKeys): in-memory sessions are not shared between replicas" -}}
{{- end -}}
{{- if and (eq $store "redis") (not .Values.secrets.existingSecret) (not .Values.secrets.sessionEncryptionKeys) -}}
{{- fail "config.session.store = \"redis\" needs secrets.sessionEncryptionKeys (or secrets.existingSecret)" -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
