"use strict";(self.rspackChunkjupyter_party=self.rspackChunkjupyter_party||[]).push([[700],{646(r,t,e){var o=e(601),a=e.n(o),n=e(314),p=(e.n(n))()(a());p.push([r.id,`.jp-party-panel {
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-size: var(--jp-ui-font-size1);
  overflow: auto;
  padding: 4px 8px;
}
.jp-party-header {
  align-items: center;
  display: flex;
  justify-content: space-between;
}
.jp-party-panel h2,
.jp-party-panel h3 {
  margin: 6px 0;
}
.jp-party-list {
  list-style: none;
  margin: 0;
  padding: 0;
}
.jp-party-item {
  border-bottom: 1px solid var(--jp-border-color2);
  padding: 4px 0;
}
.jp-party-name {
  font-weight: 600;
}
.jp-party-kind,
.jp-party-connections,
.jp-party-empty {
  color: var(--jp-ui-font-color2);
}
.jp-party-status {
  color: var(--jp-ui-font-color2);
}
.jp-party-failed .jp-party-name,
.jp-party-status-error {
  color: var(--jp-error-color1);
}
.jp-party-error,
.jp-party-log {
  background: var(--jp-layout-color2);
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  max-height: 12em;
  overflow: auto;
  white-space: pre-wrap;
}
.jp-party-actions {
  display: flex;
  flex-wrap: wrap;
  gap: 2px;
  margin-top: 2px;
}
.jp-party-button {
  background: var(--jp-layout-color2);
  border: 1px solid var(--jp-border-color1);
  color: var(--jp-ui-font-color1);
  cursor: pointer;
  font-size: var(--jp-ui-font-size0);
}
.jp-party-link {
  box-sizing: border-box;
  margin: 6px 0;
  width: 100%;
}
.jp-party-subtitle {
  font-weight: 600;
}
.jp-party-sparklines {
  color: var(--jp-brand-color1);
  display: flex;
  flex-wrap: wrap;
  font-size: var(--jp-ui-font-size0);
  gap: 6px;
  margin-top: 2px;
}
.jp-party-rate {
  align-items: center;
  color: var(--jp-ui-font-color2);
  display: inline-flex;
  gap: 2px;
}
.jp-party-spark {
  color: var(--jp-brand-color1);
  display: inline-flex;
}
.jp-party-value {
  box-sizing: border-box;
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  width: 100%;
}
`,""]),e.d(t,{},{A:p})},314(r){r.exports=function(r){var t=[];return t.toString=function(){return this.map(function(t){var e="",o=void 0!==t[5];return t[4]&&(e+="@supports (".concat(t[4],") {")),t[2]&&(e+="@media ".concat(t[2]," {")),o&&(e+="@layer".concat(t[5].length>0?" ".concat(t[5]):""," {")),e+=r(t),o&&(e+="}"),t[2]&&(e+="}"),t[4]&&(e+="}"),e}).join("")},t.i=function(r,e,o,a,n){"string"==typeof r&&(r=[[null,r,void 0]]);var p={};if(o)for(var i=0;i<this.length;i++){var c=this[i][0];null!=c&&(p[c]=!0)}for(var s=0;s<r.length;s++){var l=[].concat(r[s]);o&&p[l[0]]||(void 0!==n&&(void 0===l[5]||(l[1]="@layer".concat(l[5].length>0?" ".concat(l[5]):""," {").concat(l[1],"}")),l[5]=n),e&&(l[2]&&(l[1]="@media ".concat(l[2]," {").concat(l[1],"}")),l[2]=e),a&&(l[4]?(l[1]="@supports (".concat(l[4],") {").concat(l[1],"}"),l[4]=a):l[4]="".concat(a)),t.push(l))}},t}},601(r){r.exports=function(r){return r[1]}},72(r){var t=[];function e(r){for(var e=-1,o=0;o<t.length;o++)if(t[o].identifier===r){e=o;break}return e}function o(r,o){for(var a={},n=[],p=0;p<r.length;p++){var i=r[p],c=o.base?i[0]+o.base:i[0],s=a[c]||0,l="".concat(c," ").concat(s);a[c]=s+1;var u=e(l),f={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==u)t[u].references++,t[u].updater(f);else{var d=function(r,t){var e=t.domAPI(t);return e.update(r),function(t){t?(t.css!==r.css||t.media!==r.media||t.sourceMap!==r.sourceMap||t.supports!==r.supports||t.layer!==r.layer)&&e.update(r=t):e.remove()}}(f,o);o.byIndex=p,t.splice(p,0,{identifier:l,updater:d,references:1})}n.push(l)}return n}r.exports=function(r,a){var n=o(r=r||[],a=a||{});return function(r){r=r||[];for(var p=0;p<n.length;p++){var i=e(n[p]);t[i].references--}for(var c=o(r,a),s=0;s<n.length;s++){var l=e(n[s]);0===t[l].references&&(t[l].updater(),t.splice(l,1))}n=c}}},659(r){var t={};r.exports=function(r,e){var o=function(r){if(void 0===t[r]){var e=document.querySelector(r);if(window.HTMLIFrameElement&&e instanceof window.HTMLIFrameElement)try{e=e.contentDocument.head}catch(r){e=null}t[r]=e}return t[r]}(r);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(e)}},540(r){r.exports=function(r){var t=document.createElement("style");return r.setAttributes(t,r.attributes),r.insert(t,r.options),t}},56(r,t,e){r.exports=function(r){var t=e.nc;t&&r.setAttribute("nonce",t)}},206(r){r.exports=function(r){if("u"<typeof document)return{update:function(){},remove:function(){}};var t=r.insertStyleElement(r);return{update:function(e){var o,a,n;o="",e.supports&&(o+="@supports (".concat(e.supports,") {")),e.media&&(o+="@media ".concat(e.media," {")),(a=void 0!==e.layer)&&(o+="@layer".concat(e.layer.length>0?" ".concat(e.layer):""," {")),o+=e.css,a&&(o+="}"),e.media&&(o+="}"),e.supports&&(o+="}"),(n=e.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),r.styleTagTransform(o,t,r.options)},remove:function(){var r;null===(r=t).parentNode||r.parentNode.removeChild(r)}}}},113(r){r.exports=function(r,t){if(t.styleSheet)t.styleSheet.cssText=r;else{for(;t.firstChild;)t.removeChild(t.firstChild);t.appendChild(document.createTextNode(r))}}},959(r,t,e){var o=e(72),a=e.n(o),n=e(206),p=e.n(n),i=e(659),c=e.n(i),s=e(56),l=e.n(s),u=e(540),f=e.n(u),d=e(113),y=e.n(d),v=e(646),m={};m.styleTagTransform=y(),m.setAttributes=l(),m.insert=c().bind(null,"head"),m.domAPI=p(),m.insertStyleElement=f(),a()(v.A,m),v.A&&v.A.locals&&v.A.locals}}]);