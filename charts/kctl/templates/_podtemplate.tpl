{{/*
The pieces of the pod every kind runs, as in kctl/templates/_kubernetes.j2: the pod's metadata,
placement and security context, the trainer container's security context and mounts, and the
volumes (the config from the ConfigMap, /work_dirs on a claim or an emptyDir, the optional data
claim, a memory-backed /dev/shm). Non-root, no privilege escalation, no capabilities. Each piece
is a block without indentation; the kind's template indents it.
*/}}

{{/* The pod template's metadata: the labels of every object, the pod annotations. */}}
{{- define "kctl.podMetadata" -}}
metadata:
  labels:
    {{- include "kctl.labels" . | trim | nindent 4 }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- range $key, $value := . }}
    {{ $key | quote }}: {{ $value | quote }}
    {{- end }}
  {{- end }}
{{- end -}}

{{/* Where and as whom the pods run: ServiceAccount, pull secrets (names, or {name: ...} as in
other charts), node selector, affinity, tolerations. */}}
{{- define "kctl.podPlacement" -}}
{{- with .Values.serviceAccount }}
serviceAccountName: {{ . | quote }}
{{- end }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
- name: {{ if kindIs "map" . }}{{ .name | quote }}{{ else }}{{ . | quote }}{{ end }}
{{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- range $key, $value := . }}
  {{ $key | quote }}: {{ $value | quote }}
  {{- end }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end -}}

{{/* The pod's securityContext: non-root, the image's user (1000), RuntimeDefault seccomp. */}}
{{- define "kctl.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* The trainer container's securityContext and volumeMounts. */}}
{{- define "kctl.containerSecurityAndMounts" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
volumeMounts:
{{- if not .Values.configInImage }}
- name: config
  mountPath: /config
  readOnly: true
{{- end }}
- name: work-dir
  mountPath: /work_dirs
{{- if .Values.dataPvc }}
- name: data
  mountPath: {{ .Values.dataMountPath | quote }}
  readOnly: true
{{- end }}
- name: dshm
  mountPath: /dev/shm
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The pod's volumes; called with (dict "root" $ "claim" CLAIM): /work_dirs is the claim CLAIM,
or an emptyDir when it is empty. */}}
{{- define "kctl.volumes" -}}
{{- $root := .root -}}
volumes:
{{- if not $root.Values.configInImage }}
- name: config
  configMap:
    name: {{ include "kctl.configMapName" $root | quote }}
    items:
    {{- range $path, $text := include "kctl.configFiles" $root | fromJson }}
    - key: {{ replace "/" "__" $path | quote }}
      path: {{ $path | quote }}
    {{- end }}
{{- end }}
- name: work-dir
{{- if .claim }}
  persistentVolumeClaim:
    claimName: {{ .claim | quote }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- if $root.Values.dataPvc }}
- name: data
  persistentVolumeClaim:
    claimName: {{ $root.Values.dataPvc | quote }}
    readOnly: true
{{- end }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ $root.Values.shmSize | toString | quote }}
- name: tmp
  emptyDir: {}
{{- end -}}
