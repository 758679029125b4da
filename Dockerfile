# One image for every Bora role: the command line picks coordinator or worker.
# Build stage: a C compiler for the native matrix kernels (common/kernels), then the TypeScript.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY scripts ./scripts
COPY proto ./proto
COPY cli ./cli
COPY common ./common
COPY coordinator ./coordinator
COPY worker ./worker
COPY bench ./bench
COPY chaos ./chaos
COPY test ./test
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

# Runtime stage: the built tree without the compiler. The kernels pick AVX-512, AVX2 or portable
# code when they load, so the image runs on any x86-64 host.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app /app
ENTRYPOINT ["node", "dist/cli/bora.js"]
