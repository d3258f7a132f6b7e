{{- define "app1.name" -}}app1{{- end -}}
