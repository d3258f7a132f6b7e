{{- define "hello.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hello.config" -}}
LOG_LEVEL: {{ .Values.log.level | quote }}
REGION: {{ .Values.global.region | quote }}
CLUSTER: {{ .Values.global.clusterName | quote }}
{{- if .Values.global.cloud }}
DB_HOST: "db.{{ .Values.global.region }}.cloud.internal"
{{- else }}
DB_HOST: "db.{{ lower .Values.global.clusterName }}.internal"
{{- end }}
QUEUE: {{ .Values.worker.queue | quote }}
{{- end -}}
