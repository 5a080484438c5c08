{{/*
The pod template of every replica (Master and Worker share it), as in
kctl/templates/pytorchjob.yaml.j2: the `pytorch` container with the operator's port, the config
(ConfigMap), /work_dirs (claim or emptyDir), the optional data claim and a memory-backed /dev/shm;
non-root, no privilege escalation, no capabilities.
*/}}
{{- define "kctl.podTemplate" -}}
{{- $claim := include "kctl.workDirClaim" . -}}
metadata:
  labels:
    {{- include "kctl.labels" . | nindent 4 }}
spec:
  {{- with .Values.priorityClass }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    runAsGroup: 1000
    fsGroup: 1000
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: pytorch
    image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) | quote }}
    command: {{ include "kctl.command" . }}
    env:
    {{- /* identical nodes: torchrun computes the ranks, a restarted node cannot read stale ones
           from the previous master's rendezvous store */}}
    - name: TORCH_ELASTIC_WORKER_IDENTICAL
      value: "1"
    {{- if eq (int .Values.gpus) 0 }}
    {{- /* CPU training: GPUs a runtime may show to pods that request none stay unused */}}
    - name: CUDA_VISIBLE_DEVICES
      value: ""
    {{- with include "kctl.ompThreads" . }}
    {{- /* the CPUs per process: the results of CPU training depend on the thread count */}}
    - name: OMP_NUM_THREADS
      value: {{ . | quote }}
    {{- end }}
    {{- end }}
    ports:
    - name: pytorchjob-port
      containerPort: 23456
    {{- if or .Values.cpu .Values.memory (gt (int .Values.gpus) 0) }}
    resources:
      limits:
        {{- with .Values.cpu }}
        cpu: {{ . | quote }}
        {{- end }}
        {{- with .Values.memory }}
        memory: {{ . | quote }}
        {{- end }}
        {{- if gt (int .Values.gpus) 0 }}
        nvidia.com/gpu: {{ int .Values.gpus }}
        {{- end }}
      {{- if or .Values.cpu .Values.memory }}
      requests:
        {{- with .Values.cpu }}
        cpu: {{ . | quote }}
        {{- end }}
        {{- with .Values.memory }}
        memory: {{ . | quote }}
        {{- end }}
      {{- end }}
    {{- end }}
    securityContext:
      allowPrivilegeEscalation: false
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
  volumes:
  {{- if not .Values.configInImage }}
  - name: config
    configMap:
      name: {{ include "kctl.configMapName" . }}
      items:
      {{- range $path, $text := include "kctl.configFiles" . | fromJson }}
      - key: {{ replace "/" "__" $path | quote }}
        path: {{ $path | quote }}
      {{- end }}
  {{- end }}
  - name: work-dir
  {{- if $claim }}
    persistentVolumeClaim:
      claimName: {{ $claim | quote }}
  {{- else }}
    emptyDir: {}
  {{- end }}
  {{- if .Values.dataPvc }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ .Values.dataPvc | quote }}
      readOnly: true
  {{- end }}
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ .Values.shmSize | quote }}
{{- end -}}
