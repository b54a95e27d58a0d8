{{/* Names and labels. */}}
{{- define "mlo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mlo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mlo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mlo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mimir
{{- end -}}

{{- define "mlo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mlo.mimirNamespace" -}}
{{- default .Release.Namespace .Values.mimirNamespace -}}
{{- end -}}

{{- define "mlo.leaseName" -}}
{{- default (include "mlo.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/* "true" when leader election is on: asked for, or required by replicas > 1 (then an
explicit `false` is an error: two replicas writing at once would undo each other). */}}
{{- define "mlo.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled -}}
{{- if gt (int .Values.replicas) 1 -}}
{{- if and (kindIs "bool" $enabled) (not $enabled) -}}
{{- fail "replicas > 1 needs leader election: remove leaderElection.enabled=false (or set it to true)" -}}
{{- end -}}
true
{{- else -}}
{{- if and (kindIs "bool" $enabled) $enabled -}}true{{- else -}}false{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mlo.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the pod. */}}
{{- define "mlo.configDir" -}}/etc/mimir-limit-optimizer{{- end -}}
{{- define "mlo.secretsDir" -}}/var/run/secrets/mimir-limit-optimizer{{- end -}}
{{- define "mlo.dataDir" -}}/var/lib/mimir-limit-optimizer{{- end -}}
{{- define "mlo.mimirRuntimeDir" -}}/etc/mimir-runtime{{- end -}}

{{/* The optimizer's configuration: values.config plus the keys the chart owns. */}}
{{- define "mlo.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- range $key := list "target" "leaderElection" "server" "dataDir" -}}
{{- if hasKey $config $key -}}
{{- fail (printf "config.%s is set by the chart (see values.yaml): remove it from config" $key) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "dataDir" (include "mlo.dataDir" .) -}}
{{- $_ := set $config "target" (dict "kind" "configmap" "configMap" (dict "namespace" (include "mlo.mimirNamespace" .) "name" .Values.overridesConfigMap.name "key" .Values.overridesConfigMap.key "createIfMissing" .Values.overridesConfigMap.createIfMissing)) -}}
{{- with .Values.mimirRuntimeConfigMap.name -}}
{{- if ne (include "mlo.mimirNamespace" $) $.Release.Namespace -}}
{{- fail "mimirRuntimeConfigMap needs the optimizer in Mimir's namespace (a pod mounts ConfigMaps of its own namespace only): install the release there, or leave mimirRuntimeConfigMap.name empty" -}}
{{- end -}}
{{- $_ := set $config.target "baseFiles" (list (printf "%s/%s" (include "mlo.mimirRuntimeDir" $) $.Values.mimirRuntimeConfigMap.key)) -}}
{{- end -}}
{{- $_ := set $config "leaderElection" (dict "enabled" (eq (include "mlo.leaderElection" .) "true") "namespace" (include "mlo.mimirNamespace" .) "leaseName" (include "mlo.leaseName" .) "leaseDuration" .Values.leaderElection.leaseDuration "renewDeadline" .Values.leaderElection.renewDeadline "retryPeriod" .Values.leaderElection.retryPeriod) -}}
{{- $_ := set $config "server" (dict "host" "0.0.0.0" "metricsPort" .Values.ports.metrics "healthPort" .Values.ports.health "uiPort" .Values.ports.ui) -}}
{{- $secrets := .Values.secrets -}}
{{- if or $secrets.prometheusBearerToken.secretName $secrets.prometheusBasicAuthPassword.secretName -}}
{{- $source := default dict (get $config "source") -}}
{{- $prom := default dict (get $source "prometheus") -}}
{{- if $secrets.prometheusBearerToken.secretName -}}
{{- $_ := set $prom "bearerTokenFile" (printf "%s/prometheus-bearer-token/%s" (include "mlo.secretsDir" .) $secrets.prometheusBearerToken.key) -}}
{{- end -}}
{{- if $secrets.prometheusBasicAuthPassword.secretName -}}
{{- $auth := default dict (get $prom "basicAuth") -}}
{{- $_ := set $auth "passwordFile" (printf "%s/prometheus-basic-auth/%s" (include "mlo.secretsDir" .) $secrets.prometheusBasicAuthPassword.key) -}}
{{- $_ := set $prom "basicAuth" $auth -}}
{{- end -}}
{{- $_ := set $source "prometheus" $prom -}}
{{- $_ := set $config "source" $source -}}
{{- end -}}
{{- if $secrets.protectionApiToken.secretName -}}
{{- $breaker := default dict (get $config "circuitBreaker") -}}
{{- $_ := set $breaker "apiTokenFile" (printf "%s/protection-api-token/%s" (include "mlo.secretsDir" .) $secrets.protectionApiToken.key) -}}
{{- $_ := set $config "circuitBreaker" $breaker -}}
{{- end -}}
{{- $alertSecrets := dict -}}
{{- with $secrets.slackWebhookURL -}}{{- if .secretName -}}{{- $_ := set $alertSecrets "slack" (list "webhookURLFile" "alerting-slack" .key) -}}{{- end -}}{{- end -}}
{{- with $secrets.pagerdutyIntegrationKey -}}{{- if .secretName -}}{{- $_ := set $alertSecrets "pagerduty" (list "integrationKeyFile" "alerting-pagerduty" .key) -}}{{- end -}}{{- end -}}
{{- with $secrets.smtpPassword -}}{{- if .secretName -}}{{- $_ := set $alertSecrets "email" (list "passwordFile" "alerting-email" .key) -}}{{- end -}}{{- end -}}
{{- if or $alertSecrets $secrets.webhookURLs -}}
{{- $alerting := default dict (get $config "alerting") -}}
{{- range $channel, $spec := $alertSecrets -}}
{{- $section := default dict (get $alerting $channel) -}}
{{- $_ := set $section (index $spec 0) (printf "%s/%s/%s" (include "mlo.secretsDir" $) (index $spec 1) (index $spec 2)) -}}
{{- $_ := set $alerting $channel $section -}}
{{- end -}}
{{- if $secrets.webhookURLs -}}
{{- $hooks := default dict (get $alerting "webhooks") -}}
{{- range $name, $ref := $secrets.webhookURLs -}}
{{- $hook := default dict (get $hooks $name) -}}
{{- $_ := set $hook "urlFile" (printf "%s/alerting-webhook-%s/%s" (include "mlo.secretsDir" $) ($name | lower) $ref.key) -}}
{{- $_ := set $hooks $name $hook -}}
{{- end -}}
{{- $_ := set $alerting "webhooks" $hooks -}}
{{- end -}}
{{- $_ := set $config "alerting" $alerting -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Secrets mounted as files: name -> (secret, key). */}}
{{- define "mlo.secretMounts" -}}
{{- $out := dict -}}
{{- with .Values.secrets.prometheusBearerToken -}}{{- if .secretName -}}{{- $_ := set $out "prometheus-bearer-token" . -}}{{- end -}}{{- end -}}
{{- with .Values.secrets.prometheusBasicAuthPassword -}}{{- if .secretName -}}{{- $_ := set $out "prometheus-basic-auth" . -}}{{- end -}}{{- end -}}
{{- with .Values.secrets.protectionApiToken -}}{{- if .secretName -}}{{- $_ := set $out "protection-api-token" . -}}{{- end -}}{{- end -}}
{{- with .Values.secrets.slackWebhookURL -}}{{- if .secretName -}}{{- $_ := set $out "alerting-slack" . -}}{{- end -}}{{- end -}}
{{- with .Values.secrets.pagerdutyIntegrationKey -}}{{- if .secretName -}}{{- $_ := set $out "alerting-pagerduty" . -}}{{- end -}}{{- end -}}
{{- with .Values.secrets.smtpPassword -}}{{- if .secretName -}}{{- $_ := set $out "alerting-email" . -}}{{- end -}}{{- end -}}
{{- range $name, $ref := .Values.secrets.webhookURLs -}}{{- $_ := set $out (printf "alerting-webhook-%s" ($name | lower)) $ref -}}{{- end -}}
{{- toJson $out -}}
{{- end -}}
