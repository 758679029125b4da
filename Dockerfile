# One image for every Bora role: the command line picks coordinator or worker.
FROM node:20-bookworm-slim
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip NODE_ENV=production
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY proto ./proto
COPY cli ./cli
COPY common ./common
COPY coordinator ./coordinator
COPY worker ./worker
COPY bench ./bench
COPY chaos ./chaos
COPY test ./test
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
ENTRYPOINT ["node", "dist/cli/bora.js"]
